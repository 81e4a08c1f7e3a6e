"""Each command imports only what it needs: a ``blockmon`` or ``alembic`` process costs
its imports (SQLAlchemy and redis-py are most of a command's CPU), and a Kubernetes exec
probe or init container pays them on every run. Each case runs in a fresh interpreter
and lists the top-level packages it loaded."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blockmon.config.settings import PostgresSettings
from tests.test_migrations_cli import dsn

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
HEAVY = {"sqlalchemy", "asyncpg", "redis", "alembic", "dependency_injector", "prometheus_client"}

# Runs the command (blockmon's or alembic's entry point) in this process, then writes the
# top-level packages it loaded to the file named first.
PROBE = """
import json, sys
out, kind, *argv = sys.argv[1:]
try:
    if kind == "blockmon":
        from blockmon.cli import main
        sys.exit(main(argv))
    else:
        from alembic.config import main
        main(argv=argv)
finally:
    with open(out, "w") as file:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), file)
"""


def loaded(kind: str, argv: list[str], tmp_path: Path, **extra: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLOCKMON_", "MIGRATIONS_"))}
    env.pop("DATABASE_URL", None)
    env.update(BLOCKMON_CONFIG=str(ROOT / "config.yml"), **extra)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), kind, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return set(json.loads(out.read_text()))


NO_CLIENTS = {"redis", "dependency_injector", "prometheus_client"}


def case(kind: str, argv: list[str], needed: set[str], absent: set[str]) -> Any:
    return pytest.param(kind, argv, needed, absent, id=" ".join([kind, *argv]))


@pytest.mark.parametrize(
    ("kind", "argv", "needed", "absent"),
    [
        case("blockmon", ["--help"], set(), HEAVY),
        case("blockmon", ["config", "show"], set(), HEAVY),
        case("blockmon", ["config", "show", "--json"], set(), HEAVY),
        case("blockmon", ["doctor", "--help"], set(), HEAVY),
        # The migrations without a database: Alembic and SQLAlchemy, no client, no metrics.
        case("blockmon", ["db", "history"], {"alembic"}, NO_CLIENTS | {"asyncpg"}),
        case("blockmon", ["db", "upgrade", "head", "--sql"], {"alembic"}, NO_CLIENTS | {"asyncpg"}),
        # blockmon's env.py run whole by Alembic, offline.
        case("alembic", ["upgrade", "head", "--sql"], {"alembic", "sqlalchemy"}, NO_CLIENTS),
    ],
)
def test_a_command_imports_only_what_it_needs(
    kind: str, argv: list[str], needed: set[str], absent: set[str], tmp_path: Path
) -> None:
    modules = loaded(kind, argv, tmp_path)
    assert {"blockmon", *needed} <= modules  # the command ran
    assert modules & absent == set()


async def test_db_on_a_database_builds_no_container(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    """``db current`` (upgrade, downgrade, check and stamp share its code) runs on an engine
    of the migration settings: no metrics, no health checker, no dependency-injector."""
    url = dsn(blockmon_fresh_database)
    argv = ["db", "current"]
    modules = await asyncio.to_thread(loaded, "blockmon", argv, tmp_path, DATABASE_URL=url)
    assert {"alembic", "asyncpg"} <= modules  # it connected
    assert modules & {"dependency_injector", "prometheus_client", "starlette", "fastapi"} == set()
