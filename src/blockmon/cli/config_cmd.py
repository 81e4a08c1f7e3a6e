"""``blockmon config show``: the effective configuration, secrets masked; the file it
was read from on stderr."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    config = sub.add_parser("config", help="inspect the configuration", parents=[common])
    actions = config.add_subparsers(title="actions", metavar="ACTION", parser_class=type(config))
    show = actions.add_parser(
        "show", help="print the effective configuration, secrets masked", parents=[common]
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    import json
    import sys

    import yaml

    from blockmon.cli.settings import command_settings
    from blockmon.cli.target import config_line
    from blockmon.config.secrets import masked_settings

    data = masked_settings(command_settings(args))
    print(f"blockmon: {config_line(args)}", file=sys.stderr)  # stdout stays YAML/JSON
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0
