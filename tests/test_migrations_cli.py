"""``alembic`` from the repository root and ``blockmon db`` as processes: concurrency,
the lock bound, bad input, the migration DSN, and a wheel in a fresh virtualenv."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import URL

from blockmon.config.settings import PostgresSettings
from blockmon.migrations.lock import LOCK_KEY
from blockmon.postgres.engine import engine_url
from blockmon.provisioning.servers import connect
from tests.test_wheel import offline_venv

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIMEOUT = 180


def dsn(settings: PostgresSettings, **changes: object) -> str:
    url: URL = engine_url(settings).set(drivername="postgresql", **changes)  # type: ignore[arg-type]
    return url.render_as_string(hide_password=False)


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLOCKMON_", "MIGRATIONS_"))}
    env.pop("DATABASE_URL", None)
    env.update({"BLOCKMON_LOG_LEVEL": "info", "BLOCKMON_CONFIG": str(ROOT / "config.yml")})
    env.update(extra)
    return env


def blockmon(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "blockmon"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


async def fetch(settings: PostgresSettings, sql: str) -> list[asyncpg.Record]:
    conn = await connect(settings)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def public_tables(settings: PostgresSettings) -> set[str]:
    rows = await fetch(settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows}


def one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("blockmon: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
async def test_six_alembic_processes_at_once_apply_the_revision_once(
    blockmon_fresh_database: PostgresSettings,
) -> None:
    env = environ(DATABASE_URL=dsn(blockmon_fresh_database))
    procs = [
        await asyncio.create_subprocess_exec(
            str(BIN / "alembic"),
            "upgrade",
            "head",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(6)
    ]
    results = [await asyncio.wait_for(p.communicate(), TIMEOUT) for p in procs]
    outputs = [(out.decode(), err.decode()) for out, err in results]
    assert [p.returncode for p in procs] == [0] * 6, outputs
    runs = sum(err.count("Running upgrade  -> 0001") for _, err in outputs)
    assert runs == 1, outputs
    versions = await fetch(
        blockmon_fresh_database, "SELECT version_num FROM blockmon_alembic_version"
    )
    assert [r[0] for r in versions] == ["0001"]


async def test_a_waiter_past_the_lock_bound_fails_clearly(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    config = tmp_path / "config.yml"
    config.write_text("migrations:\n  lock_wait: 2\n  alerting_tables: true\n")
    env = environ(DATABASE_URL=dsn(blockmon_fresh_database), BLOCKMON_CONFIG=str(config))
    holder = await connect(blockmon_fresh_database)
    try:
        await holder.execute("SET application_name = 'other-replica'")
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        started = time.monotonic()
        result = await asyncio.to_thread(blockmon, "db", "upgrade", "head", env=env)
        elapsed = time.monotonic() - started
    finally:
        await holder.close()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("blockmon: error:")]
    assert len(error) == 1, result.stderr
    assert "migrations.lock_wait" in error[0] and "after 2 s" in error[0]
    assert "other-replica" in error[0] and "nothing was applied" in error[0]
    assert 2 <= elapsed < 2 + 30
    assert await public_tables(blockmon_fresh_database) == set()


@pytest.mark.slow
async def test_db_commands_end_to_end(blockmon_fresh_database: PostgresSettings) -> None:
    env = environ(DATABASE_URL=dsn(blockmon_fresh_database), BLOCKMON_LOG_LEVEL="warning")

    def db(*args: str) -> subprocess.CompletedProcess[str]:
        return blockmon("db", *args, env=env)

    current = await asyncio.to_thread(db, "current")
    assert current.returncode == 0 and "base (empty), not at head (0001)" in current.stdout
    assert (await asyncio.to_thread(db, "check")).returncode == 1
    upgraded = await asyncio.to_thread(db, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "schema at 0001, at head" in upgraded.stdout
    assert (await asyncio.to_thread(db, "upgrade", "head")).returncode == 0  # already there
    assert (await asyncio.to_thread(db, "check")).returncode == 0
    history = await asyncio.to_thread(db, "history")
    assert history.returncode == 0 and "<base> -> 0001 (head)" in history.stdout

    await fetch(blockmon_fresh_database, "ALTER TABLE users ADD COLUMN drift int")
    drifted = await asyncio.to_thread(db, "check")
    assert drifted.returncode == 1
    one_error_line(drifted, "drift")
    await fetch(blockmon_fresh_database, "ALTER TABLE users DROP COLUMN drift")

    down = await asyncio.to_thread(db, "downgrade", "base")
    assert down.returncode == 0 and "base (empty)" in down.stdout
    bookkeeping = {"blockmon_alembic_version", "blockmon_alembic_version_checksums"}
    assert await public_tables(blockmon_fresh_database) == bookkeeping
    stamped = await asyncio.to_thread(db, "stamp", "0001")
    assert stamped.returncode == 0 and "at head" in stamped.stdout
    assert await public_tables(blockmon_fresh_database) == bookkeeping


def test_offline_sql_needs_no_database() -> None:
    env = environ(DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    result = blockmon("db", "upgrade", "--sql", env=env)
    assert result.returncode == 0, result.stderr
    assert "SET lock_timeout = '5000ms';" in result.stdout
    assert "CREATE TABLE users" in result.stdout
    assert "CREATE INDEX idx_alerts_rule_id ON alerts (rule_id);" in result.stdout
    down = blockmon("db", "downgrade", "0001:base", "--sql", env=env)
    assert down.returncode == 0 and "DROP TABLE users;" in down.stdout


def test_bad_input_is_one_line_and_exit_2() -> None:
    env = environ(DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    cases: Sequence[tuple[tuple[str, ...], tuple[str, ...]]] = [
        (("db", "upgrade", "nosuchrev"), ("revision", "nosuchrev")),
        (("db", "stamp", "nosuchrev"), ("revision", "nosuchrev")),
        (("db", "downgrade"), ("db downgrade", "REV")),
        (("db", "stamp"), ("db stamp", "REV")),
        (("db", "upgrade", "--bogus"), ("--bogus",)),
        (("db",), ("db",)),
        (("db", "frobnicate"), ("frobnicate",)),
        (("db", "current", "--sql"), ("--sql",)),
        (("db", "downgrade", "base", "--sql"), ("db downgrade --sql", "<fromrev>:<torev>")),
    ]
    for args, needles in cases:
        result = blockmon(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        one_error_line(result, *needles)


def test_bad_migration_settings_exit_2(tmp_path: Path) -> None:
    for body, needles in [
        ("migrations:\n  lock_wait: -1\n", ("migrations.lock_wait", "must be > 0")),
        ("migrations:\n  lock_timeout: soon\n", ("migrations.lock_timeout", "number")),
        ("migrations:\n  lok_wait: 3\n", ("migrations.lok_wait", "lock_wait")),
    ]:
        config = tmp_path / "config.yml"
        config.write_text(body)
        result = blockmon("db", "current", env=environ(BLOCKMON_CONFIG=str(config)))
        assert result.returncode == 2, result.stderr
        one_error_line(result, *needles)


async def test_migration_dsn_is_used_and_its_password_never_shown(
    blockmon_fresh_database: PostgresSettings,
) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/app"
    env = environ(DATABASE_URL=unreachable, MIGRATIONS_DATABASE_URL=dsn(blockmon_fresh_database))
    result = await asyncio.to_thread(blockmon, "db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert "users" in await public_tables(blockmon_fresh_database)

    secret = "s3cret-Migr4tion"
    env = environ(
        DATABASE_URL=unreachable,
        MIGRATIONS_DATABASE_URL=f"postgresql://postgres:{secret}@127.0.0.1:1/none",
        BLOCKMON_LOG_LEVEL="debug",
    )
    failed = await asyncio.to_thread(blockmon, "db", "upgrade", env=env)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert secret not in failed.stderr + failed.stdout
    assert "database:" in failed.stderr


async def test_wheel_in_a_fresh_venv_runs_db_upgrade(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    venv = await asyncio.to_thread(offline_venv, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = environ(DATABASE_URL=dsn(blockmon_fresh_database))
    env.pop("BLOCKMON_CONFIG")
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"

    def db_upgrade() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "blockmon"), "db", "upgrade", "head"],
            env=env, cwd=elsewhere, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip

    refused = await asyncio.to_thread(db_upgrade)  # blockmon owns no tables unless asked
    assert refused.returncode == 2, refused.stderr
    one_error_line(refused, "db upgrade: no migration chain", "migrations.alerting_tables")
    assert await public_tables(blockmon_fresh_database) == set()
    (elsewhere / "config.yml").write_text("migrations:\n  alerting_tables: true\n")
    result = await asyncio.to_thread(db_upgrade)
    assert result.returncode == 0, result.stderr
    assert "schema at 0001, at head" in result.stdout
    assert str(ROOT) not in result.stderr  # the packaged migrations ran, not the checkout's
    assert {"users", "alert_rules", "alerts"} <= await public_tables(blockmon_fresh_database)
