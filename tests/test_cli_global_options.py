"""``-c FILE`` and ``--log-level`` before or after the command: the same effect for every
command. A first-release bug dropped them when given before the command, and
``blockmon -c prod.yml db downgrade base`` downgraded the database of ./config.yml."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from blockmon.cli import main
from blockmon.config.settings import PostgresSettings, Settings
from blockmon.testing import create_database, drop_database
from tests.test_migrations_cli import dsn, public_tables

BIN = Path(sys.executable).parent
# Every command and action, with the arguments it needs to get as far as reading settings.
COMMANDS = [
    ["up", "--no-embedded"],
    ["config", "show"],
    ["health"],
    ["serve"],
    ["db", "upgrade"],
    ["db", "upgrade", "head", "--sql"],
    ["db", "downgrade", "base"],
    ["db", "current"],
    ["db", "history"],
    ["db", "check"],
    ["db", "stamp", "head"],
]
IDS = [" ".join(argv) for argv in COMMANDS]


def positions(argv: list[str], *options: str) -> tuple[list[str], list[str]]:
    """``argv`` with ``options`` before the command, and after it."""
    return [*options, *argv], [*argv, *options]


@pytest.mark.parametrize("argv", COMMANDS, ids=IDS)
def test_a_missing_config_file_is_exit_2_before_and_after_the_command(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "prod.yml"
    lines = []
    for args in positions(argv, "-c", str(missing)):
        assert main(args) == 2, args
        out, err = capsys.readouterr()
        assert out == ""
        lines.append(err)
    assert lines[0] == lines[1] == f"blockmon: error: {missing}: config file not found\n"


@pytest.mark.parametrize("argv", COMMANDS, ids=IDS)
def test_the_log_level_is_parsed_the_same_before_and_after_the_command(argv: list[str]) -> None:
    from blockmon.cli.parser import build_parser

    before, after = (
        vars(build_parser().parse_args(args))
        for args in positions(argv, "-c", "x.yml", "--log-level", "error")
    )
    assert before == after
    assert (before["config"], before["log_level"]) == ("x.yml", "error")


def test_config_show_reads_the_named_file_in_both_positions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yml").write_text("postgres: {database: from_cwd}\n")
    (tmp_path / "prod.yml").write_text("postgres: {database: from_prod}\n")
    monkeypatch.chdir(tmp_path)
    for var in ("BLOCKMON_CONFIG", "DATABASE_URL", "BLOCKMON_LOG_LEVEL"):
        monkeypatch.delenv(var, raising=False)
    shown = []
    for args in positions(["config", "show", "--json"], "-c", "prod.yml", "--log-level", "error"):
        assert main(args) == 0
        shown.append(json.loads(capsys.readouterr().out))
    assert shown[0] == shown[1]
    assert shown[0]["postgres"]["database"] == "from_prod"
    assert shown[0]["log"]["level"] == "error"
    assert "BLOCKMON_LOG_LEVEL" not in os.environ  # an argument, not a process-wide change


@pytest_asyncio.fixture
async def two_databases(
    blockmon_settings: Settings,
) -> AsyncIterator[tuple[PostgresSettings, PostgresSettings]]:
    names = [f"bm_{secrets.token_hex(6)}" for _ in range(2)]
    made = [await create_database(blockmon_settings.postgres, name) for name in names]
    try:
        yield made[0], made[1]
    finally:
        for name in names:
            await drop_database(blockmon_settings.postgres, name)


async def test_c_before_db_downgrade_acts_on_the_named_database_only(
    two_databases: tuple[PostgresSettings, PostgresSettings], tmp_path: Path
) -> None:
    prod, local = two_databases
    chain = {"alerting_tables": True}
    (tmp_path / "config.yml").write_text(
        yaml.safe_dump({"postgres": {"url": dsn(local)}, "migrations": chain})
    )
    (tmp_path / "prod.yml").write_text(
        yaml.safe_dump({"postgres": {"url": dsn(prod)}, "migrations": chain})
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BLOCKMON_", "MIGRATIONS_")) and k not in ("DATABASE_URL",)
    }

    def blockmon(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "blockmon"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        return result

    blockmon("db", "upgrade", "head")  # ./config.yml: the local database
    blockmon("-c", "prod.yml", "db", "upgrade", "head")
    tables = await public_tables(local)
    assert {"users", "alert_rules", "alerts"} <= tables
    assert await public_tables(prod) == tables

    blockmon("-c", "prod.yml", "db", "downgrade", "base")
    assert await public_tables(prod) <= {
        "blockmon_alembic_version", "blockmon_alembic_version_checksums"
    }  # fmt: skip
    assert await public_tables(local) == tables  # untouched

    # --sql reads the same file: a broken ./config.yml does not matter.
    (tmp_path / "config.yml").write_text("postgres: [broken\n")
    sql = blockmon("-c", "prod.yml", "--log-level", "error", "db", "upgrade", "head", "--sql")
    assert "CREATE TABLE users" in sql.stdout
