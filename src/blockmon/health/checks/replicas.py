"""Health of the PostgreSQL read replicas: one check per replica (reachable, replaying,
its lag against ``postgres.replica_lag_warn``, its pool). A replica that answers is put
back in the router's rotation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blockmon.config.log import get_logger
from blockmon.config.secrets import redact
from blockmon.health.checks.postgres import pool_observation
from blockmon.health.model import Observation, Status
from blockmon.postgres.replicas import (
    CONNECT_ERRORS,
    Router,
    engine_name,
    replication_lag,
    same_server,
)

if (
    TYPE_CHECKING
):  # only the type: the metrics package imports redis-py (the migration env needs none)
    from sqlalchemy.ext.asyncio import AsyncEngine

    from blockmon.metrics.pool import PoolState

CheckFunction = Callable[[], Awaitable[list[Observation]]]
_log = get_logger("blockmon.replicas")
IS_THE_PRIMARY = "this replica is the primary (the same server as the writer); reads go to it"


@dataclass(frozen=True)
class ReplicaHealth:
    replica: str  # host:port
    status: Status
    lag_seconds: float | None = None
    error: str | None = None


async def replica_health(router: Router, timeout: float = 5.0) -> list[ReplicaHealth]:
    """Per replica: reachable, replaying, and its lag against ``router.lag_warn``.

    fail: unreachable or another primary (promoted?); warn: lag above the threshold (also
    logged as a warning), or the writer's own server (a development setting: reads still
    go to it). A replica that answers is put back in rotation."""
    results = await asyncio.gather(
        *(reader_health(router, index, timeout) for index in range(len(router.readers)))
    )
    return list(results)


async def reader_health(router: Router, index: int, timeout: float = 5.0) -> ReplicaHealth:
    """`replica_health` for one replica (``router.readers[index]``), for a check per engine."""
    engine = router.readers[index]
    name = engine_name(engine)
    try:
        lag = await replication_lag(engine, timeout)
    except CONNECT_ERRORS as error:
        return ReplicaHealth(name, Status.FAIL, error=redact(f"{type(error).__name__}: {error}"))
    router.restore(index)
    if lag is None:
        if await _is_the_writer(router, engine, timeout):
            return ReplicaHealth(name, Status.WARN, error=IS_THE_PRIMARY)
        return ReplicaHealth(name, Status.FAIL, error="not in recovery: this server is a primary")
    if lag > router.lag_warn:
        _log.warning("replication lag above threshold", replica=name, lag=lag, warn=router.lag_warn)
        return ReplicaHealth(name, Status.WARN, lag_seconds=lag)
    return ReplicaHealth(name, Status.PASS, lag_seconds=lag)


async def _is_the_writer(router: Router, engine: AsyncEngine, timeout: float) -> bool:
    try:
        return await same_server(router.writer, engine, timeout)
    except CONNECT_ERRORS:
        return False  # the writer is down: its own check says so


def replica_check_name(index: int) -> str:
    """``postgres-replica-<index>``: stable, and a valid check and label value."""
    return f"postgres-replica-{index}"


def postgres_replica_check(
    router: Router,
    index: int,
    pool_state: Callable[[], PoolState] | None = None,
    *,
    saturation_warn: float = 0.9,
    timeout: float = 5.0,
) -> CheckFunction:
    """Replica ``index``: its address, replication lag in seconds (warn above
    ``postgres.replica_lag_warn`` or when it is the writer's server; fail when
    unreachable or another primary) and its pool."""
    address = engine_name(router.readers[index])

    async def check() -> list[Observation]:
        health = await reader_health(router, index, timeout)
        # One value for the observation and its text (rounding twice could disagree).
        lag = None if health.lag_seconds is None else round(health.lag_seconds, 3)
        observations = [
            Observation("address", address),
            Observation(
                "replicationLag",
                lag,
                "s",
                health.status,
                _lag_output(health.status, lag, router.lag_warn, health.error),
            ),
        ]
        if pool_state is not None:
            observations.append(pool_observation(pool_state(), saturation_warn))
        return observations

    return check


def _lag_output(status: str, lag: float | None, warn: float, error: str | None) -> str | None:
    if error is not None:
        return error
    if status == "warn" and lag is not None:
        return f"replication lag {lag:.1f} s > {warn:g} s"
    if status == "fail":
        return "replica unhealthy"
    return None
