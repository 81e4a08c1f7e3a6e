"""An engine's end: connections held across ``dispose()`` closed when they come back,
shutdown that waits for the work in flight, and no pool rebuilt after it.

``engine.dispose()`` (at shutdown, or by the health check after a lost connection)
closes the idle connections and puts a new pool in place; connections checked out at
that moment belong to the old pool, and SQLAlchemy parks them in its queue when they
come back, where nothing closes them (a ``ResourceWarning`` at garbage collection, a
server session open until then). Here each one is closed as it comes back.

`shut_down` (the engine Resource's end) waits up to ``postgres.shutdown_timeout`` for
every connection to be back (statements, units of work, sessions in flight), then
refuses new connections and disposes: from then on every call fails at once with
`EngineShutDown` instead of opening a new pool behind the application's back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool

from blockmon.errors import BlockmonError
from blockmon.postgres.disposal import follow_dispose


class EngineShutDown(BlockmonError):
    """A call reached an engine whose Resource was shut down."""


def _close_on_checkin(dbapi_connection: Any, record: Any) -> None:
    if dbapi_connection is not None and record is not None:
        record.close()  # then SQLAlchemy returns the emptied record to the old pool


def _retire(old: Pool, new: Pool) -> None:
    """``old`` was replaced by ``dispose()``: close each connection coming back to it.
    Every check-in to a pool no longer the engine's runs in SQLAlchemy's greenlet
    (`blockmon._compat.sqlalchemy.closes_at_return`), so the close may await."""
    event.listen(old, "checkin", _close_on_checkin)


def close_held_connections(engine: AsyncEngine) -> None:
    """After each ``dispose()`` of ``engine``, close the connections still checked out of
    the replaced pool when they come back."""
    follow_dispose(engine.sync_engine, _retire)


def _out(engine: AsyncEngine) -> int:
    """Connections of ``engine``'s current pool checked out now (a pool other than a
    QueuePool does not count them: 0)."""
    pool = engine.sync_engine.pool  # the health check may dispose it meanwhile
    return pool.checkedout() if isinstance(pool, QueuePool) else 0


async def drain(engine: AsyncEngine, timeout: float) -> int:
    """Wait up to ``timeout`` seconds until no connection of ``engine``'s pool is checked
    out; the number still out then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # Polled: the count is public and follows a pool replaced meanwhile, where a checkin
    # listener would sit on the old pool (and put every check-in through a greenlet).
    while _out(engine) > 0 and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return _out(engine)


def _refuse(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    raise EngineShutDown(
        "postgres: the engine was shut down (its Resource stopped); start the container "
        "again to run statements"
    )


async def shut_down(engine: AsyncEngine, timeout: float) -> None:
    """Wait up to ``timeout`` for the work in flight, then close: no new connection is
    opened from here on (`EngineShutDown`), the idle ones are closed now, the ones still
    out when they come back."""
    try:
        await drain(engine, timeout)
    finally:  # a cancelled shutdown closes at once
        sync: Engine = engine.sync_engine
        event.listen(sync, "do_connect", _refuse)
        await engine.dispose()
