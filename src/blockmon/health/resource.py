"""The container's health Resource: the checker wired to the engine, client and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.client import AbstractRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.health.checker import HealthChecker
from blockmon.health.postgres_check import postgres_check
from blockmon.health.redis_check import redis_check
from blockmon.health.schema import SchemaProbe
from blockmon.metrics import Metrics
from blockmon.settings import MonitoringSettings


def build_checker(
    settings: MonitoringSettings,
    engine: AsyncEngine,
    redis: AbstractRedis,
    metrics: Metrics,
    schema_probe: SchemaProbe | None = None,
) -> HealthChecker:
    """A checker with the postgres and redis checks registered and metrics fed."""
    checker = HealthChecker(
        timeout=settings.check_timeout,
        cache_ttl=settings.cache_ttl,
        interval=settings.health_interval,
        slow_response_warn=settings.slow_response_warn,
        listeners=[metrics.health.observe],
    )
    checker.register(
        "postgres",
        postgres_check(
            engine,
            metrics.pool.state,
            saturation_warn=settings.pool_saturation_warn,
            schema_probe=schema_probe,
        ),
        critical=settings.postgres_critical,
        component_type="datastore",
    )
    checker.register(
        "redis",
        redis_check(redis, on_memory=metrics.redis.memory.set),
        critical=settings.redis_critical,
        component_type="datastore",
    )
    return checker


async def health_resource(
    settings: MonitoringSettings,
    engine: AsyncEngine,
    redis: AbstractRedis,
    metrics: Metrics,
    schema_probe: SchemaProbe | None = None,
) -> AsyncIterator[HealthChecker]:
    """Container Resource: the checker with its periodic loop, stopped at shutdown."""
    checker = build_checker(settings, engine, redis, metrics, schema_probe)
    await checker.start()
    try:
        yield checker
    finally:
        await checker.stop()
