"""The argument parser: every sub-command registers itself; errors are one line."""

from __future__ import annotations

import argparse
from typing import NoReturn

from blockmon.cli import commands
from blockmon.errors import UsageError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class Parser(argparse.ArgumentParser):
    """Raises instead of printing usage and exiting, so ``main`` owns the output."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(
            f"{self.prog.removeprefix('blockmon ')}: {message}".removeprefix("blockmon: ")
        )


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the sub-command."""
    common = Parser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="configuration file (default: $BLOCKMON_CONFIG, else ./config.yml)",
    )
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="override the configured log level",
    )
    return common


def build_parser() -> Parser:
    common = _common()
    parser = Parser(
        prog="blockmon",
        description="PostgreSQL and Redis for blockmon services: health, migrations, monitoring.",
        parents=[common],
    )
    parser.set_defaults(config=None, log_level=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for register in commands.REGISTRY:
        register(sub, common)
    return parser
