"""The argument parser: every sub-command registers itself; errors are one line
that names the command (``db upgrade: ...``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from blockmon.cli import commands
from blockmon.cli.arguments import not_empty
from blockmon.errors import UsageError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_DEEPEST = "_blockmon_parser"  # the innermost (sub-)parser that ran, for error messages


class Parser(argparse.ArgumentParser):
    """Raises instead of printing usage and exiting, so ``main`` owns the output.

    Sub-command choices are checked after parsing rather than by argparse's
    ``required``, so ``blockmon --bogus`` says the option is unrecognized instead of
    "the following arguments are required: COMMAND"."""

    _choices: argparse._SubParsersAction[Any] | None = None

    def error(self, message: str) -> NoReturn:
        raise UsageError(
            f"{self.prog.removeprefix('blockmon ')}: {message}".removeprefix("blockmon: ")
        )

    def add_subparsers(self, **kwargs: Any) -> Any:
        self._choices = super().add_subparsers(**kwargs)
        return self._choices

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if not hasattr(parsed, _DEEPEST):
            setattr(parsed, _DEEPEST, self)
        return parsed, extras

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        deepest: Parser = vars(parsed).pop(_DEEPEST)
        if extras:
            deepest.error(f"unrecognized arguments: {' '.join(extras)}")
        if not hasattr(parsed, "handler") and deepest._choices is not None:
            names = ", ".join(repr(name) for name in deepest._choices.choices)
            deepest.error(f"{deepest._choices.metavar} is required (choose from {names})")
        for name in ("config", "log_level"):  # the common options, wherever they were given
            setattr(parsed, name, getattr(parsed, name, None))
        return parsed


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the sub-command.

    Every (sub-)parser shares these action objects, so their default must stay
    ``SUPPRESS``: any other default would be re-applied by each sub-parser and
    silently replace a value given before the command (``-c FILE db ...``)."""
    common = Parser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        type=not_empty,
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
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for register in commands.REGISTRY:
        register(sub, common)
    return parser
