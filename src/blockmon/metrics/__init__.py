"""Prometheus metrics for blockmon: one registry per container unless the global one is
asked for, so two containers in one process never collide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry
from redis.client import AbstractRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.settings import MonitoringSettings
from blockmon.metrics.cache import CacheCollector
from blockmon.metrics.pool import PoolState, PoolWatch
from blockmon.metrics.postgres import PostgresMetrics
from blockmon.metrics.redis import RedisMetrics
from blockmon.postgres.hooks import OPERATION_OPTION
from blockmon.postgres.replicas import Router, engine_name, replica_pool_name
from blockmon.redis.cache import Cache

__all__ = [
    "OPERATION_OPTION",
    "Metrics",
    "PoolState",
    "create_registry",
    "metrics_resource",
    "replica_pool_name",
]


def create_registry(settings: MonitoringSettings) -> CollectorRegistry:
    return REGISTRY if settings.use_global_registry else CollectorRegistry(auto_describe=True)


@dataclass
class Metrics:
    registry: CollectorRegistry
    postgres: PostgresMetrics
    redis: RedisMetrics
    pool: PoolWatch


async def metrics_resource(
    settings: MonitoringSettings,
    registry: CollectorRegistry,
    engine: AsyncEngine,
    redis: AbstractRedis,
    cache: Cache | None = None,
    router: Router | None = None,
) -> AsyncIterator[Metrics]:
    """Container Resource: instrument the engine, the router's read replicas (pools
    named ``replica-<index>``) and the client; undo it all at shutdown."""
    postgres = PostgresMetrics(registry, slow_query_threshold=settings.slow_query_threshold)
    pool = postgres.install(engine)
    for index, reader in enumerate(router.readers if router is not None else ()):
        postgres.install_replica(reader, replica_pool_name(index), engine_name(reader))
    client_metrics = RedisMetrics(registry)
    client_metrics.install(redis)
    collector = CacheCollector(cache) if cache is not None else None
    if collector is not None:
        registry.register(collector)
    try:
        yield Metrics(registry, postgres, client_metrics, pool)
    finally:
        postgres.uninstall()
        client_metrics.uninstall()
        if collector is not None:
            registry.unregister(collector)
        # The registry may outlive this start (a Singleton, or the global one): leave it
        # empty so that the next start registers again.
        for owner in (postgres, client_metrics):
            for family in owner.families:
                registry.unregister(family)
