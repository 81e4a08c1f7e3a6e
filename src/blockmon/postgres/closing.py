"""Pooled connections closed gracefully in tasks of their own.

SQLAlchemy's pool closes a connection inside whatever call gives it back (an overflow
connection at the end of a commit, the idle ones in ``dispose()``), and asyncpg's close
awaits the server. A cancellation arriving there (a caller's timeout) cut the close
short and SQLAlchemy's pool logged it as an error ("Exception closing connection ...
CancelledError"); the pool closed connections one after another, so disposing N of them
on a dead network took N x the close timeout. Here the pool's close starts the graceful
close (asyncpg's ``close(timeout=)``, aborted past it) and returns: nothing a
cancellation cuts, every close bounded and concurrent. ``engine.dispose()`` still
returns once its connections are closed: blockmon's pool class waits for them
(`blockmon.postgres.disposal`), outside SQLAlchemy's close, where a cancellation simply
propagates.
"""

from __future__ import annotations

import asyncio
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.config.log import get_logger

_log = get_logger("blockmon.postgres")
# the closes in flight, by the dialect object the pool closes through
_closing: WeakKeyDictionary[Dialect, set[asyncio.Task[None]]] = WeakKeyDictionary()


def close_in_tasks(engine: AsyncEngine, timeout: float) -> None:
    """Make ``engine``'s pool close each connection in a task of its own, gracefully for
    at most ``timeout`` seconds (unless SQLAlchemy's internals changed:
    `blockmon._compat.sqlalchemy.replace_close`)."""
    closing = _closing.setdefault(engine.sync_engine.dialect, set())

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


def wait_for_closes(dialect: Dialect | None) -> None:
    """In SQLAlchemy's greenlet (``engine.dispose()``), wait for the closes in flight of
    the connections ``dialect`` closes; elsewhere nothing may await: they end on their
    own, each within its timeout."""
    closing = _closing.get(dialect) if dialect is not None else None
    if closing and sa_compat.may_await():
        sa_compat.await_in_greenlet(asyncio.wait(tuple(closing)))
