"""The ``blockmon`` command. Sub-commands import what they need only when they run,
so ``blockmon --help`` stays fast."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from blockmon.cli.parser import build_parser
from blockmon.errors import BlockmonError, ConfigError, UsageError

EXIT_FAILURE, EXIT_USAGE = 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        return _fail(str(error), EXIT_USAGE)
    try:
        code: int = args.handler(args)
        return code
    except (ConfigError, UsageError) as error:
        return _fail(str(error), EXIT_USAGE)
    except BlockmonError as error:
        return _fail(str(error), EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        from blockmon.config.secrets import redact

        level = args.log_level or os.environ.get("BLOCKMON_LOG_LEVEL", "")
        if level.lower() == "debug":
            sys.stderr.write(redact("".join(traceback.format_exception(error))))
        return _fail(redact(f"unexpected error: {type(error).__name__}: {error}"), EXIT_FAILURE)


def _fail(message: str, code: int) -> int:
    from blockmon.config.secrets import one_line  # cut, whatever raised it

    sys.stderr.write(f"blockmon: error: {one_line(message)}\n")
    return code


def run() -> None:
    sys.exit(main())
