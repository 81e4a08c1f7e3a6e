"""Each command imports only what it needs: a ``blockmon`` or ``alembic`` process costs
its imports (SQLAlchemy and redis-py are most of a command's CPU), and a Kubernetes exec
probe or init container pays them on every run. Each case runs in a fresh interpreter
and lists the top-level packages it loaded; nothing connects to a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
HEAVY = {"sqlalchemy", "asyncpg", "redis", "alembic", "dependency_injector", "prometheus_client"}

# Runs what follows ``--`` as the command would, then writes the loaded packages to argv[1].
PROBE = """
import json, sys
out, kind, *argv = sys.argv[1:]
try:
    if kind == "blockmon":
        from blockmon.cli import main
        main(argv)
    else:
        from alembic.config import main
        main(argv=argv)
finally:
    with open(out, "w") as file:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), file)
"""


def loaded(kind: str, argv: list[str], tmp_path: Path) -> set[str]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLOCKMON_", "MIGRATIONS_"))}
    env.pop("DATABASE_URL", None)
    env["BLOCKMON_CONFIG"] = str(ROOT / "config.yml")
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


@pytest.mark.parametrize("argv", [["--help"], ["config", "show"], ["config", "show", "--json"]])
def test_help_and_config_show_import_no_database_or_redis_client(
    argv: list[str], tmp_path: Path
) -> None:
    modules = loaded("blockmon", argv, tmp_path)
    assert "blockmon" in modules
    assert modules & HEAVY == set()


def test_the_migration_env_imports_no_redis_client_and_no_metrics(tmp_path: Path) -> None:
    """``alembic upgrade head --sql`` runs blockmon's env.py whole, offline."""
    modules = loaded("alembic", ["upgrade", "head", "--sql"], tmp_path)
    assert {"alembic", "sqlalchemy"} <= modules  # the probe ran the migrations
    assert modules & {"redis", "prometheus_client", "dependency_injector"} == set()
