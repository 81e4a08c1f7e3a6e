"""Safe execution of migrations: a revision that hit lock_timeout runs again (bounded,
logged) while the application keeps serving; the migrations' own statement_timeout."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from alembic.config import Config
from sqlalchemy import text

from blockmon.config.settings import MigrationSettings, PostgresSettings
from blockmon.migrations.api import upgrade
from blockmon.postgres.engine import create_engine
from blockmon.provisioning.servers import connect
from tests.test_migration_lint import chain_copy
from tests.test_migrations_cli import blockmon, dsn, environ, fetch

WAIT = 60  # seconds: a bound on waiting, never a measured duration

SLEEPY = '''"""a statement that outlives the application's statement_timeout"""

from alembic import op

revision = "slow"
down_revision = "c000"


def upgrade() -> None:
    op.execute("SELECT pg_sleep(1.5)")
'''


async def test_a_locked_revision_retries_and_succeeds_while_the_app_keeps_serving(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = Config(str(chain_copy(tmp_path, "c000", "s02") / "alembic.ini"))
    settings = MigrationSettings(lock_timeout=0.2, lock_retries=8, lock_retry_backoff=0.2)
    engine = create_engine(blockmon_fresh_database)
    try:
        await upgrade(engine, "c000", config=cfg, settings=settings)
        holder = await connect(blockmon_fresh_database)
        try:
            await holder.execute("BEGIN; LOCK TABLE items IN ACCESS SHARE MODE")
            with caplog.at_level(logging.WARNING, logger="blockmon.migrate"):
                migration = asyncio.create_task(
                    upgrade(engine, "head", config=cfg, settings=settings)
                )
                deadline = time.monotonic() + WAIT
                while not [r for r in caplog.records if "retrying" in r.getMessage()]:
                    assert not migration.done(), migration.result()
                    assert time.monotonic() < deadline, "no retry logged"
                    await asyncio.sleep(0.05)
                # between tries the table and the event loop serve the application
                async with engine.connect() as conn:
                    count = await asyncio.wait_for(
                        conn.scalar(text("SELECT count(*) FROM items")), WAIT
                    )
                assert count == 0
                assert not migration.done()
                await holder.execute("COMMIT")  # the lock goes away
                status = await asyncio.wait_for(migration, WAIT)
        finally:
            await holder.close()
    finally:
        await engine.dispose()
    assert status.current == "s02" and status.at_head
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retried and all("s02" in message for message in retried), retried
    columns = await fetch(
        blockmon_fresh_database,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'",
    )
    assert "extra" in {r[0] for r in columns}


def upgrade_cli(
    database: PostgresSettings, ini: Path, config: Path, revision: str = "head"
) -> tuple[int, str]:
    env = environ(
        DATABASE_URL=dsn(database), BLOCKMON_CONFIG=str(config), BLOCKMON_LOG_LEVEL="warning"
    )
    result = blockmon("db", "upgrade", revision, "--alembic-config", str(ini), env=env)
    return result.returncode, result.stderr


async def test_a_revision_that_never_gets_its_lock_fails_after_the_configured_retries(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    ini = chain_copy(tmp_path, "c000", "s02") / "alembic.ini"
    config = tmp_path / "config.yml"
    config.write_text(
        "migrations:\n  lock_timeout: 0.2\n  lock_retries: 2\n  lock_retry_backoff: 0.1\n"
    )
    code, err = await asyncio.to_thread(upgrade_cli, blockmon_fresh_database, ini, config, "c000")
    assert code == 0, err
    holder = await connect(blockmon_fresh_database)
    try:
        await holder.execute("BEGIN; LOCK TABLE items IN ACCESS SHARE MODE")
        code, err = await asyncio.to_thread(upgrade_cli, blockmon_fresh_database, ini, config)
    finally:
        await holder.close()
    assert code == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("blockmon: error:")]
    assert len(errors) == 1, err
    assert "revision s02" in errors[0] and "lock timeout" in errors[0], errors[0]
    assert "after 2 retries, migrations.lock_retries" in errors[0], errors[0]
    assert "the database stays at c000" in errors[0], errors[0]
    retries = [line for line in err.splitlines() if "retrying" in line]
    assert len(retries) == 2, err  # each retry logged


async def test_migrations_have_their_own_statement_timeout(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    chain = chain_copy(tmp_path, "c000")
    (chain / "versions" / "01_slow.py").write_text(SLEEPY)
    ini = chain / "alembic.ini"
    config = tmp_path / "config.yml"
    config.write_text("migrations:\n  statement_timeout: 0.3\n")
    code, err = await asyncio.to_thread(upgrade_cli, blockmon_fresh_database, ini, config)
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("blockmon: error:")]
    assert len(errors) == 1 and "revision slow" in errors[0], err
    assert "statement timeout" in errors[0], err
    # the application's statement_timeout is shorter than the revision's statement; the
    # migrations' own (0: none by default) applies
    config.write_text("postgres:\n  statement_timeout: 0.5\n")
    code, err = await asyncio.to_thread(upgrade_cli, blockmon_fresh_database, ini, config)
    assert code == 0, err


async def test_an_upgrade_cancelled_while_it_waits_to_retry_leaves_nothing_behind(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = Config(str(chain_copy(tmp_path, "c000", "s02") / "alembic.ini"))
    settings = MigrationSettings(lock_timeout=0.2, lock_retries=3, lock_retry_backoff=30)
    engine = create_engine(blockmon_fresh_database)
    try:
        await upgrade(engine, "c000", config=cfg, settings=settings)
        holder = await connect(blockmon_fresh_database)
        try:
            await holder.execute("BEGIN; LOCK TABLE items IN ACCESS SHARE MODE")
            with caplog.at_level(logging.WARNING, logger="blockmon.migrate"):
                migration = asyncio.create_task(
                    upgrade(engine, "head", config=cfg, settings=settings)
                )
                deadline = time.monotonic() + WAIT
                while not [r for r in caplog.records if "retrying" in r.getMessage()]:
                    assert time.monotonic() < deadline, "no retry logged"
                    await asyncio.sleep(0.05)
                migration.cancel()  # in its 30 s pause (shutdown with work in flight)
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(migration, WAIT)
        finally:
            await holder.close()
        # the migration lock and the connection are free: the next upgrade runs at once
        restart = MigrationSettings(lock_timeout=5, lock_wait=5)
        status = await asyncio.wait_for(upgrade(engine, "head", config=cfg, settings=restart), WAIT)
        assert status.current == "s02"
    finally:
        await engine.dispose()
