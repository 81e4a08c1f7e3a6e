"""Health and metrics per node and per engine, against the real local deployments."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from blockmon.config.settings import MonitoringSettings, validate
from blockmon.errors import ConfigError
from blockmon.health import CheckResult, HealthChecker, Status
from blockmon.health.render import summary
from blockmon.postgres.replicas import Router
from blockmon.redis.topology import REDIS_ERRORS
from blockmon.testing.servers import ClusterDeployment, PostgresServer, SentinelDeployment
from tests.monitoring.support import http, merged, running
from tests.monitoring.test_metrics import scrape, value
from tests.test_postgres_topologies import pg_config, table, wait_replicated  # noqa: F401
from tests.test_redis_topologies import cluster_config, sentinel_config

DEADLINE = 60.0  # seconds: generous for a failover on a loaded 2-core machine


def observed(result: CheckResult) -> dict[str, Any]:
    return {o.measurement: o.value for o in result.observations}


async def poll(
    checker: HealthChecker, name: str, done: Callable[[CheckResult], bool]
) -> list[CheckResult]:
    """Run the check until ``done``; every result on the way (the last one is done)."""
    seen: list[CheckResult] = []
    deadline = time.monotonic() + DEADLINE
    while True:
        seen.append(await checker.check(name, max_age=0))
        if done(seen[-1]):
            return seen
        trail = [(str(r.status), r.reason) for r in seen[-3:]]
        assert time.monotonic() < deadline, f"{name}: not done after {DEADLINE}s: {trail}"
        await asyncio.sleep(0.2)


async def test_cluster_health_names_a_dead_master_and_reports_the_failover(
    blockmon_config: dict[str, Any], redis_cluster: ClusterDeployment
) -> None:
    config = merged(blockmon_config, redis=cluster_config(redis_cluster))
    async with running(config) as container, http(container) as client:
        checker: HealthChecker = await container.monitoring.health()
        cache = await container.redis.cache()
        result = await checker.check("redis", max_age=0)
        assert result.status == Status.PASS, result.reason
        values = observed(result)
        assert values["state"] == "ok" and values["slotCoverage"] == 100.0
        assert (
            sorted(n["role"] for n in values["nodes"].values()) == ["master"] * 3 + ["replica"] * 3
        )
        assert set(values["nodes"]) == set(redis_cluster.addresses)

        await cache.set_many({f"k{i}": i for i in range(100)}, ttl=60)  # every master
        samples = await scrape(client)
        per_node = {
            a: value(samples, "redis_node_connections_idle", node=a) for a in values["nodes"]
        }
        masters = {a for a, n in values["nodes"].items() if n["role"] == "master"}
        assert all(per_node[a] >= 1 for a in masters), per_node
        assert value(samples, "redis_connections_idle") == sum(per_node.values()) >= 3

        victim = redis_cluster.master_of(cache.key("k1"))
        victim.kill()
        seen = await poll(checker, "redis", lambda r: r.status != Status.PASS)
        assert victim.address in (seen[-1].reason or ""), seen[-1].reason
        # The replica takes over (the slot has a new master; until then a cluster still
        # reporting ok has simply not noticed yet): all slots served, the dead node named.
        deadline = time.monotonic() + DEADLINE
        while True:
            owner = await asyncio.to_thread(redis_cluster.master_of, cache.key("k1"))
            if owner.port != victim.port:
                break
            assert time.monotonic() < deadline, f"no failover after {DEADLINE}s"
            await asyncio.sleep(0.2)
        after = (
            await poll(
                checker,
                "redis",
                lambda r: (
                    observed(r).get("state") == "ok"
                    and observed(r).get("slotCoverage") == 100.0
                    and r.status == Status.WARN
                ),
            )
        )[-1]
        assert after.reason == f"node down: {victim.address} (master)" or (
            after.reason == f"node down: {victim.address} (replica)"
        )
        assert not observed(after)["nodes"][victim.address]["up"]
        assert "DOWN" in summary(after)
        # The client follows the new master without a restart (its slot map is refreshed
        # by the first command that meets the dead node), within a generous time bound.
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                await cache.set("k1", 1)
                break
            except REDIS_ERRORS as error:
                assert time.monotonic() < deadline, f"still failing after {DEADLINE}s: {error!r}"
                await asyncio.sleep(0.1)
        assert (await checker.report(max_age=0)).status != Status.FAIL


async def test_sentinel_health_shows_the_new_master_after_failover(
    blockmon_config: dict[str, Any], redis_sentinel: SentinelDeployment
) -> None:
    config = merged(blockmon_config, redis=sentinel_config(redis_sentinel))
    async with running(config) as container, http(container) as client:
        checker: HealthChecker = await container.monitoring.health()
        result = await checker.check("redis", max_age=0)
        assert result.status == Status.PASS, result.reason
        values = observed(result)
        assert values["master"] == redis_sentinel.current_master()
        assert values["replicas"] == 1 and values["role"] == "master"
        assert redis_sentinel.master is not None  # the probe asked the master, nobody else
        clients = await asyncio.to_thread(redis_sentinel.master.client().client_list)
        assert any(c["name"].endswith("-health") for c in clients), clients
        assert values["memory"] > 0
        body = (await client.get("/health")).text
        assert redis_sentinel.password not in body
        assert redis_sentinel.sentinel_password not in body

        assert redis_sentinel.master is not None and redis_sentinel.replica is not None
        redis_sentinel.master.kill()
        new = redis_sentinel.replica.address
        last = (
            await poll(
                checker,
                "redis",
                lambda r: observed(r).get("master") == new and observed(r).get("replicas") == 0,
            )
        )[-1]
        assert last.status == Status.WARN
        assert last.reason == f"master {new} has no replica"
        assert observed(last)["role"] == "master"  # INFO reaches the new master


async def test_replica_health_shows_lag_and_warns_while_replay_is_paused(
    blockmon_config: dict[str, Any],
    pg_primary: PostgresServer,
    pg_replica: PostgresServer,
    table: str,  # noqa: F811 - the fixture imported above
) -> None:
    postgres = pg_config(
        pg_primary, replicas=[f"127.0.0.1:{pg_replica.port}"], replica_lag_warn=0.5
    )
    config = blockmon_config | {"postgres": postgres}
    async with running(config) as container, http(container) as client:
        checker: HealthChecker = await container.monitoring.health()
        router: Router = await container.postgres.router()
        engine = await container.postgres.engine()
        async with engine.begin() as conn:
            await conn.execute(text(f"INSERT INTO {table} VALUES (1, 'one')"))
        await wait_replicated(router.readers[0], table, 1)

        result = await checker.check("postgres-replica-0", max_age=0)
        assert (result.status, result.component_type) == (Status.PASS, "datastore")
        assert not result.critical
        values = observed(result)
        assert values["address"] == f"127.0.0.1:{pg_replica.port}"
        assert 0 <= values["replicationLag"] < 0.5
        assert values["connections"]["max"] > 0
        exported = await scrape(client)
        assert exported[("__families__", ())]["postgres_replica_lag_seconds"] == "gauge"
        lag = value(exported, "postgres_replica_lag_seconds", component="postgres-replica-0")
        assert lag == values["replicationLag"]
        writer = await checker.check("postgres", max_age=0)
        assert "replicationLag" not in observed(writer)  # the writer check is unchanged

        await _paused(router, lambda: _lagging(engine, table, checker))
        after = await poll(checker, "postgres-replica-0", lambda r: r.status == Status.PASS)
        assert observed(after[-1])["replicationLag"] < 0.5

        body = (await client.get("/health")).json()
        entry = body["checks"]["postgres-replica-0:replicationLag"][0]
        assert (entry["observedUnit"], entry["componentType"]) == ("s", "datastore")


async def _paused(router: Router, during: Callable[[], Awaitable[None]]) -> None:
    """Run ``during`` while the replica's WAL replay is paused (resumed whatever happens)."""
    async with router.readers[0].connect() as conn:
        await conn.execute(text("SELECT pg_wal_replay_pause()"))
        await conn.commit()
        try:
            await during()
        finally:
            await conn.execute(text("SELECT pg_wal_replay_resume()"))
            await conn.commit()


async def _lagging(engine: Any, name: str, checker: HealthChecker) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO {name} VALUES (2, 'two')"))
    last = (await poll(checker, "postgres-replica-0", lambda r: r.status == Status.WARN))[-1]
    lag = observed(last)["replicationLag"]
    assert lag > 0.5 and last.reason == f"replication lag {lag:.1f} s > 0.5 s"


async def test_pool_metrics_per_replica_engine_are_present_and_move(
    blockmon_config: dict[str, Any], pg_primary: PostgresServer, pg_replica: PostgresServer
) -> None:
    address = f"127.0.0.1:{pg_replica.port}"
    postgres = pg_config(pg_primary, replicas=[address], pool_size=3, max_overflow=2)
    config = blockmon_config | {"postgres": postgres}
    async with running(config) as container, http(container) as client:
        router: Router = await container.postgres.router()
        labels = {"replica": "replica-0", "address": address}
        before = await scrape(client)
        assert value(before, "postgres_replica_connections_max", **labels) == 5
        assert value(before, "postgres_replica_connections_min", **labels) == 3
        acquired = value(
            before, "postgres_replica_connection_acquire_seconds_count", replica="replica-0"
        )
        writer_acquired = value(before, "postgres_connection_acquire_seconds_count")
        async with router.read_connection() as conn, router.read_connection() as other:
            await conn.execute(text("SELECT 1"))
            await other.execute(text("SELECT 1"))
            during = await scrape(client)
        assert value(during, "postgres_replica_connections_active", **labels) == 2
        assert value(during, "postgres_connections_active") == 0  # the writer's pool
        after = await scrape(client)
        assert value(after, "postgres_replica_connections_active", **labels) == 0
        assert value(after, "postgres_replica_connections_idle", **labels) == 2
        assert (
            value(after, "postgres_replica_connection_acquire_seconds_count", replica="replica-0")
            == acquired + 2
        )
        assert value(after, "postgres_connection_acquire_seconds_count") == writer_acquired
        assert value(after, "postgres_queries_total", operation="select", status="success") >= 2


def test_a_bad_replicas_critical_names_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        validate(MonitoringSettings, {"replicas_critical": "sometimes"}, "monitoring")
    assert str(caught.value).startswith("monitoring.replicas_critical: ")
    assert "\n" not in str(caught.value)
