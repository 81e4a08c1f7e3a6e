"""The Prometheus exposition: every family, values that move, bounded labels."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import exc, text

from blockmon.health.metrics import HealthMetrics
from blockmon.health.model import CheckResult, Observation, Status
from tests.monitoring.support import http, merged, running

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")

FAMILIES = {
    "postgres_connections_active": "gauge",
    "postgres_connections_idle": "gauge",
    "postgres_connections_waiting": "gauge",
    "postgres_connections_max": "gauge",
    "postgres_connections_min": "gauge",
    "postgres_queries": "counter",
    "postgres_query_duration_seconds": "histogram",
    "postgres_errors": "counter",
    "postgres_connection_acquire_seconds": "histogram",
    "postgres_connection_usage_seconds": "histogram",
    "postgres_connection_creation_seconds": "histogram",
    "postgres_connection_acquire_timeouts": "counter",
    "postgres_connection_leaks": "counter",
    "postgres_connection_invalidations": "counter",
    "redis_connections_active": "gauge",
    "redis_connections_idle": "gauge",
    "redis_commands": "counter",
    "redis_command_duration_seconds": "histogram",
    "redis_errors": "counter",
    "redis_memory_usage_bytes": "gauge",
    "redis_memory_max_bytes": "gauge",
    "blockmon_cache_hits": "counter",
    "blockmon_cache_misses": "counter",
    "blockmon_health_status": "gauge",
    "blockmon_health_check_duration_seconds": "gauge",
}


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    families = {}
    for family in text_string_to_metric_families(response.text):
        families[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    samples[("__families__", ())] = families  # type: ignore[assignment]
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_every_family_is_exposed_and_values_move(blockmon_config):
    async with running(blockmon_config) as container, http(container) as client:
        engine = await container.postgres.engine()
        redis = await container.redis.client()
        cache = await container.redis.cache()
        await client.get("/health")  # health metrics and redis memory come from a check
        maxmemory = int((await redis.config_get("maxmemory"))["maxmemory"])
        before = await scrape(client)
        families = before[("__families__", ())]
        for name, kind in FAMILIES.items():
            assert families.get(name) == kind, name
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.execute(
                text("SELECT 2"), execution_options={"blockmon_operation": "load_rules"}
            )
            with pytest.raises(exc.ProgrammingError):
                await conn.execute(text("SELECT * FROM no_such_table"))
        await redis.set(cache.key("m"), "1")
        with pytest.raises(Exception, match=r"wrong number|unknown"):
            await redis.execute_command("GET")
        await cache.get("m")
        await cache.get("missing")
        await cache.get_many(["m", "missing"])  # one PIPELINE round trip
        after = await scrape(client)
    assert value(after, "postgres_queries_total", operation="select", status="success") >= 1
    assert value(after, "postgres_queries_total", operation="load_rules", status="success") == 1
    assert value(after, "postgres_queries_total", operation="select", status="error") == 1
    assert value(after, "postgres_errors_total", type="programming") == 1
    assert value(after, "postgres_query_duration_seconds_count", operation="load_rules") == 1
    assert value(after, "postgres_connection_usage_seconds_count") > value(
        before, "postgres_connection_usage_seconds_count"
    )
    assert value(after, "postgres_connection_acquire_seconds_count") > value(
        before, "postgres_connection_acquire_seconds_count"
    )
    assert value(after, "postgres_connection_creation_seconds_count") >= 1
    assert value(after, "postgres_connections_max") == 20
    assert value(after, "postgres_connections_min") == 10
    assert value(after, "postgres_connections_idle") >= 1
    assert value(after, "redis_commands_total", command="SET", status="success") == 1
    assert value(after, "redis_commands_total", command="GET", status="success") == 2
    assert value(after, "redis_commands_total", command="GET", status="error") == 1
    assert value(after, "redis_commands_total", command="PIPELINE", status="success") == 1
    assert value(after, "redis_errors_total", type="response") == 1
    assert value(after, "redis_command_duration_seconds_count", command="SET") == 1
    assert value(after, "redis_connections_idle") >= 1
    assert value(after, "redis_memory_usage_bytes") > 0
    assert value(after, "redis_memory_max_bytes") == maxmemory
    assert value(after, "blockmon_cache_hits_total") == 2
    assert value(after, "blockmon_cache_misses_total") == 2
    assert value(after, "blockmon_health_status", component="postgres", status="pass") == 1
    assert value(after, "blockmon_health_status", component="redis", status="fail") == 0
    assert value(after, "blockmon_health_check_duration_seconds", component="redis") > 0


async def test_operation_labels_stay_bounded(blockmon_config):
    async with running(blockmon_config) as container, http(container) as client:
        engine = await container.postgres.engine()
        async with engine.connect() as conn:
            for i in range(300):
                await conn.execute(text(f"SELECT {i} AS n{i}"))
                await conn.execute(
                    text("SELECT 1"), execution_options={"blockmon_operation": f"op{i}"}
                )
            await conn.execute(
                text("SELECT 1"), execution_options={"blockmon_operation": "bad name!"}
            )
            await conn.execute(text("/* hint */ WITH x AS (SELECT 1) SELECT * FROM x"))
        samples = await scrape(client)
    operations = {
        dict(labels)["operation"] for (name, labels) in samples if name == "postgres_queries_total"
    }
    assert len(operations) <= 110
    assert {"select", "with", "other", "op0"} <= operations
    assert "op299" not in operations and "bad name!" not in operations


async def test_slow_query_logged_with_sql_never_parameters(blockmon_config, caplog):
    secret = "param-value-7f3a"
    config = merged(blockmon_config, monitoring={"slow_query_threshold": 0.05})
    async with running(config) as container:
        engine = await container.postgres.engine()
        caplog.set_level(logging.WARNING, logger="blockmon.postgres.slow")
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.1), CAST(:p AS text)"), {"p": secret})
            await conn.execute(text("SELECT 1"))
    slow = [r for r in caplog.records if r.name == "blockmon.postgres.slow"]
    assert len(slow) == 1
    logged = str(slow[0].msg)
    assert "pg_sleep" in logged and "select" in logged and "duration_ms" in logged
    assert secret not in logged


async def test_waiting_callers_exhausted_log_and_acquire_timeouts(blockmon_config, caplog):
    config = merged(
        blockmon_config,
        postgres={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.3},
        monitoring={"details": "always", "pool_saturation_warn": 1.0},
    )
    async with running(config) as container, http(container) as client:
        engine = await container.postgres.engine()
        caplog.set_level(logging.INFO, logger="blockmon.postgres")
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            waiters = [asyncio.create_task(_use(engine)) for _ in range(2)]
            await asyncio.sleep(0.1)
            during = await scrape(client)
            health = (await client.get("/health")).json()
            results = await asyncio.gather(*waiters, return_exceptions=True)
        after = await scrape(client)
    assert value(during, "postgres_connections_waiting") == 2
    assert value(during, "postgres_connections_active") == 1
    assert health["status"] == "warn"
    assert "waiting" in health["checks"]["postgres:connections"][0]["output"]
    assert all(isinstance(r, exc.TimeoutError) for r in results)
    assert value(after, "postgres_connections_waiting") == 0
    assert value(after, "postgres_connection_acquire_timeouts_total") >= 2
    assert value(after, "postgres_errors_total", type="pool_timeout") >= 2
    exhausted = [r for r in caplog.records if "exhausted" in str(r.msg)]
    assert len(exhausted) == 1  # once per episode


async def _use(engine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def test_two_containers_in_one_process(blockmon_config):
    async with (
        running(blockmon_config) as first,
        running(blockmon_config) as second,
        http(first) as one,
        http(second) as two,
    ):
        engine = await first.postgres.engine()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        a, b = await scrape(one), await scrape(two)
    assert value(a, "postgres_queries_total", operation="select", status="success") == 1
    assert value(b, "postgres_queries_total", operation="select", status="success") == 0


async def test_global_registry_is_opt_in_and_released_at_shutdown(blockmon_config):
    config = merged(blockmon_config, monitoring={"use_global_registry": True})
    for _ in range(2):  # the second container registers again without a clash
        async with running(config) as container:
            assert container.monitoring.registry() is REGISTRY
            assert REGISTRY.get_sample_value("postgres_connections_max") == 20
    assert REGISTRY.get_sample_value("postgres_connections_max") is None


async def test_a_container_can_start_twice(blockmon_config):
    from blockmon.containers import ApplicationContainer
    from blockmon.lifespan import Lifespan

    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    for _ in range(2):
        async with Lifespan(container), http(container) as client:
            samples = await scrape(client)
            assert value(samples, "postgres_connections_max") == 20


def test_replica_lag_series_leaves_while_the_lag_is_unknown():
    """An unreachable replica has no lag: its last value must not stay behind looking fine."""
    registry = CollectorRegistry()
    exported = HealthMetrics(registry)

    def result(lag: float | None) -> CheckResult:
        status = Status.PASS if lag is not None else Status.FAIL
        lag_seen = Observation("replicationLag", lag, "s", status)
        now = datetime.now(UTC)
        return CheckResult(
            "postgres-replica-0", "datastore", False, status, 0.01, now, None, (lag_seen,)
        )

    labels = {"component": "postgres-replica-0"}
    exported.observe(result(0.25))
    assert registry.get_sample_value("postgres_replica_lag_seconds", labels) == 0.25
    exported.observe(result(None))
    assert registry.get_sample_value("postgres_replica_lag_seconds", labels) is None
    exported.observe(result(None))
    exported.observe(result(3.0))
    assert registry.get_sample_value("postgres_replica_lag_seconds", labels) == 3.0
