"""Scenario 8: SIGKILL an ``alembic upgrade`` in the middle of a revision. The revision
leaves no trace, the migration lock is released, and a plain rerun succeeds."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg

from blockmon.config.settings import PostgresSettings
from blockmon.migrations.api import versions_dir
from blockmon.migrations.lock import LOCK_KEY
from blockmon.provisioning.servers import connect
from tests.test_migrations import failing_revision
from tests.test_migrations_cli import BIN, ROOT, dsn, environ

BOUND = 60.0
ADVISORY = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
    "AND ((classid::bigint << 32) | objid::bigint) = $1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def poll(conn: asyncpg.Connection, sql: str, *args: object) -> object:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if value := await conn.fetchval(sql, *args, timeout=5):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"never true within {BOUND} s: {sql}")


async def alembic(ini: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN / "alembic"), "-c", str(ini), "upgrade", "head",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_sigkill_mid_revision_leaves_no_trace_and_rerun_succeeds(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    (tmp_path / "versions").mkdir()
    marker = tmp_path / "sleep"  # the first run sleeps in the revision; the rerun does not
    marker.touch()
    versions = failing_revision(
        tmp_path / "versions",
        f"""\
        op.execute("CREATE TABLE half_done (id int)")
        if __import__("os").path.exists({str(marker)!r}):
            op.execute("SELECT pg_sleep(30)")
        """,
    )
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        "[alembic]\n"
        f"script_location = {ROOT / 'migrations'}\n"
        f"version_locations = {versions_dir()}:{versions}\n"
        "path_separator = os\nprepend_sys_path = .\n"
    )
    env = environ(DATABASE_URL=dsn(blockmon_fresh_database))
    watcher = await connect(blockmon_fresh_database)
    try:
        proc = await alembic(ini, env)
        try:
            # Killed while the revision sleeps, holding the migration lock.
            await poll(
                watcher,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'",
            )
            assert await watcher.fetchval(ADVISORY, LOCK_KEY) == 1
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.communicate(), BOUND)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # The lock goes with the session: released once the server sees the socket close.
        deadline = time.monotonic() + BOUND
        while await watcher.fetchval(ADVISORY, LOCK_KEY):
            assert time.monotonic() < deadline, "the migration lock outlived the process"
            await asyncio.sleep(0.1)
        assert await watcher.fetchval("SELECT version_num FROM blockmon_alembic_version") == "0001"
        assert await watcher.fetchval("SELECT to_regclass('half_done')") is None

        # A plain rerun, no manual step: it takes the lock at once and applies 0002.
        marker.unlink()
        started = time.monotonic()
        rerun = await alembic(ini, env)
        _out, err = await asyncio.wait_for(rerun.communicate(), BOUND)
        assert rerun.returncode == 0, err.decode()
        assert "waiting for the migration lock" not in err.decode()
        assert time.monotonic() - started < BOUND
        assert await watcher.fetchval("SELECT version_num FROM blockmon_alembic_version") == "0002"
        assert await watcher.fetchval("SELECT to_regclass('half_done')") is not None
        assert await watcher.fetchval(ADVISORY, LOCK_KEY) == 0
    finally:
        await watcher.close()
