"""Serialises migrations started at the same moment (replicas starting together).

Alembic has no lock of its own (alembic #633). A session advisory lock is taken on a
connection of its own, never the one the migrations run on: SQL run on that one before
Alembic starts would open a transaction Alembic then treats as external. Waiters poll
``pg_try_advisory_lock`` until a deadline, so a stuck migration elsewhere turns into a
clear error instead of a hang. The server drops the lock if this process dies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from blockmon.config.log import get_logger
from blockmon.errors import MigrationLockTimeout

LOCK_KEY = 0x626C6F636B6D6F6E  # "blockmon" in ASCII; advisory locks are per database
POLL_INTERVAL = 0.2
_log = get_logger("blockmon.migrate")


@asynccontextmanager
async def advisory_lock(
    engine: AsyncEngine, wait: float, key: int = LOCK_KEY
) -> AsyncIterator[None]:
    """Hold the migration lock for the body; wait at most ``wait`` seconds to get it."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        started = time.monotonic()
        deadline = started + wait
        announced = False
        while not await _try_lock(conn, key):
            left = deadline - time.monotonic()
            if left <= 0:
                holder = await _holder(conn, key)
                raise MigrationLockTimeout(
                    f"migrations.lock_wait: another migration{holder} still held the "
                    f"migration lock after {wait:g} s; nothing was applied "
                    "(retry later, or raise migrations.lock_wait)"
                )
            if not announced:
                _log.info("waiting for the migration lock", lock_wait=wait)
                announced = True
            await asyncio.sleep(min(POLL_INTERVAL, left))
        _log.debug("migration lock taken", waited=round(time.monotonic() - started, 3))
        try:
            yield
        finally:
            await _unlock(conn, key)


async def _try_lock(conn: AsyncConnection, key: int) -> bool:
    result = await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
    return bool(result.scalar())


async def _unlock(conn: AsyncConnection, key: int) -> None:
    try:
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    except Exception as error:  # closing the connection releases the lock anyway
        _log.warning("migration lock not released cleanly", error=type(error).__name__)
        await conn.invalidate()


async def _holder(conn: AsyncConnection, key: int) -> str:
    """`` (pid N, application 'x')`` for the session holding the lock, if visible."""
    row = (
        await conn.execute(
            text(
                "SELECT l.pid, a.application_name FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key LIMIT 1"
            ),
            {"key": key},
        )
    ).first()
    if row is None:
        return ""
    app = f", application {row.application_name!r}" if row.application_name else ""
    return f" (pid {row.pid}{app})"
