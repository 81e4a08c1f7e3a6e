"""The container's health Resource: the checker wired to the engine, client and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.client import AbstractRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.off import Off
from blockmon.config.settings import MonitoringSettings, TracingSettings
from blockmon.health.checker import HealthChecker
from blockmon.health.checks.postgres import postgres_check
from blockmon.health.checks.redis import redis_check
from blockmon.health.checks.redis_probe import RedisProbe
from blockmon.health.checks.redis_topology import (
    CheckFunction,
    redis_cluster_check,
    redis_sentinel_check,
)
from blockmon.health.checks.replicas import postgres_replica_check, replica_check_name
from blockmon.health.checks.schema import SchemaProbe, schema_check
from blockmon.health.metrics import HealthMetrics
from blockmon.metrics import Metrics
from blockmon.postgres.replicas import Router, replica_pool_name
from blockmon.tracing import check_span


def build_checker(
    settings: MonitoringSettings,
    engine: AsyncEngine | Off,
    redis: AbstractRedis | Off,
    metrics: Metrics,
    schema_probe: SchemaProbe | None = None,
    router: Router | Off | None = None,
    redis_probe: RedisProbe | None = None,
    tracing: TracingSettings | None = None,
) -> HealthChecker:
    """A checker with the postgres and redis checks (for the Redis topology in use),
    one check per read replica, and metrics fed. ``redis_probe`` (standalone and
    Sentinel modes; see `redis_probe_for`) is the Redis check's own connection."""
    checker = HealthChecker(
        timeout=settings.check_timeout,
        cache_ttl=settings.cache_ttl,
        interval=settings.health_interval,
        slow_response_warn=settings.slow_response_warn,
        span=check_span(tracing),
        failure_threshold=settings.failure_threshold,
        success_threshold=settings.success_threshold,
        thresholds={
            name: (check.failure_threshold, check.success_threshold)
            for name, check in settings.checks.items()
        },
        groups=settings.groups,
        check_threads=settings.check_threads,
    )
    if isinstance(engine, AsyncEngine) and metrics.pool is not None:
        checker.register(
            "postgres",
            postgres_check(
                engine,
                metrics.pool.state,
                saturation_warn=settings.pool_saturation_warn,
            ),
            critical=settings.postgres_critical,
            component_type="datastore",
        )
        if schema_probe is not None:
            checker.register(
                "postgres:schema",
                schema_check(engine, schema_probe, metrics.pool.state),
                critical=settings.postgres_critical,
                component_type="datastore",
            )
    if not isinstance(redis, Off):
        checker.register(
            "redis",
            _redis_check(redis, redis_probe, metrics, settings),
            critical=settings.redis_critical,
            component_type="datastore",
        )
    for index in range(len(router.readers) if isinstance(router, Router) else 0):
        assert isinstance(router, Router) and metrics.postgres is not None
        watch = metrics.postgres.replica_watches.get(replica_pool_name(index))
        checker.register(
            replica_check_name(index),
            postgres_replica_check(
                router,
                index,
                watch.state if watch is not None else None,
                saturation_warn=settings.pool_saturation_warn,
                timeout=settings.check_timeout,
            ),
            critical=settings.replicas_critical,
            component_type="datastore",
        )
    return checker


def redis_probe_for(redis: AbstractRedis | Off) -> RedisProbe | None:
    """The health check's own connection to the client's server (or current master);
    None for a cluster client, whose check uses the client's per-node pools."""
    if isinstance(redis, Redis):
        return RedisProbe(redis.connection_pool)
    return None


def _redis_check(
    redis: AbstractRedis, probe: RedisProbe | None, metrics: Metrics, settings: MonitoringSettings
) -> CheckFunction:
    """Cluster: state, slots and nodes; Sentinel: the master, its replicas and INFO;
    standalone: INFO. Each topology query is bounded by half the check's timeout, so a
    hung first node leaves time to ask the next."""
    timeout = settings.check_timeout
    if isinstance(redis, RedisCluster):
        return redis_cluster_check(redis, timeout / 2)
    if probe is None or metrics.redis is None:
        raise TypeError("build_checker: a standalone or Sentinel client needs a redis_probe")
    info = redis_check(
        probe,
        on_memory=metrics.redis.record_memory,
        saturation_warn=settings.pool_saturation_warn,
        on_up=metrics.redis.link.connected,
        on_lost=metrics.redis.link.lost,
    )
    if isinstance(redis, Redis) and isinstance(redis.connection_pool, SentinelConnectionPool):
        return redis_sentinel_check(redis, info, timeout / 2)
    return info


async def health_resource(
    settings: MonitoringSettings,
    engine: AsyncEngine | Off,
    redis: AbstractRedis | Off,
    metrics: Metrics,
    schema_probe: SchemaProbe | None = None,
    router: Router | Off | None = None,
    tracing: TracingSettings | None = None,
) -> AsyncIterator[HealthChecker]:
    """Container Resource: the checker with its periodic loop, stopped at shutdown, and
    the Redis probe's connection, closed after it."""
    probe = redis_probe_for(redis)
    checker = build_checker(settings, engine, redis, metrics, schema_probe, router, probe, tracing)
    exported = HealthMetrics(metrics.registry)
    checker.listeners.append(exported.observe)
    await checker.start()
    try:
        yield checker
    finally:
        try:
            await checker.stop()
        finally:
            exported.unregister()
            if probe is not None:
                await probe.aclose()
