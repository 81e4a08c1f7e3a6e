"""Pooled connections closed gracefully in tasks of their own, which shutdown awaits.

SQLAlchemy's pool closes a connection inside whatever call gives it back (an overflow
connection at the end of a commit, the idle ones in ``dispose()``), and asyncpg's close
awaits the server. A cancellation arriving there (a caller's timeout) cut the close
short and SQLAlchemy's pool logged it as an error ("Exception closing connection ...
CancelledError"); the pool closed connections one after another, so disposing N of them
on a dead network took N x the close timeout. Here the pool's close starts the graceful
close (asyncpg's ``close(timeout=)``, aborted past it) and returns: nothing the caller
awaits, nothing a cancellation cuts, every close bounded and concurrent.
"""

from __future__ import annotations

import asyncio
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.config.log import get_logger

_log = get_logger("blockmon.postgres")
_closing: WeakKeyDictionary[Engine, set[asyncio.Task[None]]] = WeakKeyDictionary()


def close_in_tasks(engine: AsyncEngine, timeout: float) -> None:
    """Make ``engine``'s pool close each connection in a task of its own, gracefully for
    at most ``timeout`` seconds (unless SQLAlchemy's internals changed:
    `blockmon._compat.sqlalchemy.replace_close`)."""
    closing = _closing.setdefault(engine.sync_engine, set())

    def do_close(dbapi_conn: Any) -> None:
        driver = dbapi_conn.driver_connection
        try:
            task = asyncio.get_running_loop().create_task(_close(driver, timeout))
        except RuntimeError:  # no loop here (a garbage collector's thread): abort
            driver.terminate()
            return
        closing.add(task)
        task.add_done_callback(closing.discard)

    sa_compat.replace_close(engine, do_close)


async def _close(driver: Any, timeout: float) -> None:
    try:
        await driver.close(timeout=timeout)
    except Exception as error:
        # The network is dead (timeout: asyncpg aborted the socket), or the server ended
        # the session while it was being closed: closed either way, not an error to log.
        _log.debug("connection aborted while closing", error=type(error).__name__)


async def closes_done(engine: AsyncEngine) -> None:
    """Wait for the closes ``engine``'s pool has started (each bounded by its timeout)."""
    closing = _closing.get(engine.sync_engine)
    if closing:
        await asyncio.wait(tuple(closing))


async def dispose(engine: AsyncEngine) -> None:
    """``engine.dispose()``, returning once its idle connections are closed (ended on the
    server, not aborted when the event loop ends)."""
    await engine.dispose()
    await closes_done(engine)
