"""An application's Alembic configuration (its ``alembic.ini``): read once, when the
setting that names it is loaded, so a wrong path is a configuration error at start-up
rather than a failing readiness probe later."""

from __future__ import annotations

import configparser
from functools import cache
from pathlib import Path
from typing import NamedTuple

DEFAULT_VERSION_TABLE = "alembic_version"


class Chain(NamedTuple):
    """One migration chain: the table its applied revisions are in, and its heads."""

    version_table: str
    heads: tuple[str, ...]


def read_chain(path: str) -> Chain:
    """The chain an ``alembic.ini`` describes; ``ValueError`` says what is wrong with it."""
    return _read(str(Path(path).resolve()))


@cache
def _read(path: str) -> Chain:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if not Path(path).is_file():
        raise ValueError(f"no such file: {path}")
    cfg = Config(path)
    try:
        location = cfg.get_main_option("script_location")
    except configparser.Error as error:
        raise ValueError(f"{path} is not an alembic.ini ({str(error).splitlines()[0]})") from None
    if not location:
        raise ValueError(f"{path} has no [alembic] script_location")
    try:
        heads = tuple(sorted(ScriptDirectory.from_config(cfg).get_heads()))
    except (CommandError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: {' '.join(str(error).split())}") from None
    table = cfg.get_main_option("version_table") or DEFAULT_VERSION_TABLE
    return Chain(table, heads)
