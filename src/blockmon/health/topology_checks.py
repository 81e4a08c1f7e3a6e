"""Health checks for the scale-out topologies: a Redis Cluster (state, slot coverage,
nodes), a Sentinel-managed master (its address and replicas), and one check per
PostgreSQL read replica (replication lag and pool). They only interpret what the plain
functions of `blockmon.redis_topology` and `blockmon.replicas` report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis, RedisCluster

from blockmon.health.model import Observation, Status
from blockmon.health.postgres_check import pool_observation
from blockmon.metrics.pool import PoolState
from blockmon.redaction import redact
from blockmon.redis_topology import CLUSTER_SLOTS, cluster_state, sentinel_master
from blockmon.replicas import Router, engine_name, reader_health

CheckFunction = Callable[[], Awaitable[list[Observation]]]


def redis_cluster_check(client: RedisCluster, timeout: float = 5.0) -> CheckFunction:
    """State (fail unless ``ok``), slot coverage (warn below 100 %) and every node's role
    and liveness (warn naming the nodes that are down)."""

    async def check() -> list[Observation]:
        state = await cluster_state(client, timeout)
        ok = state.state == "ok"
        observations = [
            Observation(
                "state",
                state.state,
                status=Status.PASS if ok else Status.FAIL,
                output=None
                if ok
                else f"cluster state {state.state}: {state.error or ''}".rstrip(": "),
            )
        ]
        if state.error is not None:
            return observations
        missing = CLUSTER_SLOTS - state.slots_ok
        observations.append(
            Observation(
                "slotCoverage",
                round(state.coverage * 100, 2),
                "percent",
                Status.WARN if missing or state.slots_pfail else Status.PASS,
                f"{missing} of {CLUSTER_SLOTS} slots not served, {state.slots_pfail} suspected"
                if missing or state.slots_pfail
                else None,
            )
        )
        down = [f"{n.address} ({n.role})" for n in state.nodes if not n.up]
        observations.append(
            Observation(
                "nodes",
                {n.address: {"role": n.role, "up": n.up} for n in state.nodes},
                "nodes",
                Status.WARN if down else Status.PASS,
                f"node down: {', '.join(down)}" if down else None,
            )
        )
        return observations

    return check


def redis_sentinel_check(
    client: Redis, info_check: CheckFunction, timeout: float = 5.0
) -> CheckFunction:
    """The current master's address (fail when the sentinels name none) and its replica
    count (warn at 0: one more failure loses the service), then the usual INFO
    observations of that master (``info_check``)."""

    async def check() -> list[Observation]:
        master, info = await asyncio.gather(
            sentinel_master(client, timeout), info_check(), return_exceptions=True
        )
        if isinstance(master, BaseException):
            raise master
        if master.address is None:
            output = f"no master for {master.service_name}: {master.error or 'unknown'}"
            return [Observation("master", None, status=Status.FAIL, output=output)]
        observations = [
            Observation("master", master.address),
            Observation(
                "replicas",
                master.replicas,
                "replicas",
                Status.PASS if master.replicas else Status.WARN,
                None if master.replicas else f"master {master.address} has no replica",
            ),
        ]
        if isinstance(info, BaseException):
            output = redact(f"{type(info).__name__}: {info}".rstrip(": "))
            observations.append(Observation("role", None, status=Status.FAIL, output=output))
        else:
            observations.extend(info)
        return observations

    return check


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
    ``postgres.replica_lag_warn``; fail when unreachable or promoted) and its pool."""
    address = engine_name(router.readers[index])

    async def check() -> list[Observation]:
        health = await reader_health(router, index, timeout)
        observations = [
            Observation("address", address),
            Observation(
                "replicationLag",
                None if health.lag_seconds is None else round(health.lag_seconds, 3),
                "s",
                Status(health.status),
                _lag_output(health.status, health.lag_seconds, router.lag_warn, health.error),
            ),
        ]
        if pool_state is not None:
            observations.append(pool_observation(pool_state(), saturation_warn))
        return observations

    return check


def _lag_output(status: str, lag: float | None, warn: float, error: str | None) -> str | None:
    if status == "warn" and lag is not None:
        return f"replication lag {lag:.1f} s > {warn:g} s"
    if status == "fail":
        return error or "replica unhealthy"
    return None
