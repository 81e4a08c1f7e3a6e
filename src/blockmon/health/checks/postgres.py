"""The PostgreSQL check: one round trip through the application's own pool, plus the
server version and pool usage (the schema is a check of its own, ``postgres:schema``).
A connection failure makes the pool drop its idle connections, so requests reconnect as
soon as the server is back."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.failures import connection_failure, missing_database
from blockmon.health.model import Observation, Status

if (
    TYPE_CHECKING
):  # only the type: the metrics package imports redis-py (the migration env needs none)
    from blockmon.metrics.pool import PoolState

OPERATION = "health_check"
_PING = text("SELECT 1")


def postgres_check(
    engine: AsyncEngine,
    pool_state: Callable[[], PoolState],
    *,
    saturation_warn: float = 0.9,
) -> Callable[[], Awaitable[list[Observation]]]:
    """An async check function for `HealthChecker.register`."""
    pinger = engine.execution_options(isolation_level="AUTOCOMMIT", blockmon_operation=OPERATION)

    async def check() -> list[Observation]:
        state = pool_state()
        if state.max and state.used >= state.max:
            # Another caller in the queue would tell nothing about the server and, under
            # load, would turn a busy pool into a failed readiness probe.
            return [_version(engine), pool_observation(state, saturation_warn)]
        try:
            async with pinger.connect() as conn:
                await conn.execute(_PING)
        except Exception as error:
            if _connection_lost(error):
                await engine.dispose()
            plain = worded(error, engine)
            if plain is not None:
                raise plain from None
            raise
        return [_version(engine), pool_observation(pool_state(), saturation_warn)]

    return check


def worded(error: BaseException, engine: AsyncEngine) -> ConnectionError | None:
    """A failed name lookup (its message does not name the host) or a missing database
    (SQLAlchemy wraps it in a paragraph) as one line, the same for every PostgreSQL
    check: ``cannot resolve host 'db' (...)``; None for any other error."""
    if not isinstance(error, socket.gaierror) and missing_database(error) is None:
        return None
    address = f"{engine.url.host}:{engine.url.port or 5432}"
    return ConnectionError(connection_failure(error, address=address))


def pool_observation(state: PoolState, saturation_warn: float) -> Observation:
    """Warn when the pool is nearly full or callers wait for a connection."""
    value = {"used": state.used, "idle": state.idle, "max": state.max, "waiting": state.waiting}
    if state.waiting or (state.max and state.used >= saturation_warn * state.max):
        output = f"pool saturated: {state.used}/{state.max} in use, {state.waiting} waiting"
        return Observation("connections", value, "connections", Status.WARN, output)
    return Observation("connections", value, "connections")


def _version(engine: AsyncEngine) -> Observation:
    info = engine.dialect.server_version_info or ()
    return Observation("version", ".".join(str(p) for p in info) or None)


def _connection_lost(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, exc.InterfaceError | exc.OperationalError
        )
    return isinstance(error, OSError | TimeoutError | exc.DisconnectionError)
