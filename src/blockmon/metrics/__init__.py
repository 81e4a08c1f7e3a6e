"""Prometheus metrics for blockmon: one registry per container unless the global one is
asked for, so two containers in one process never collide; with
``monitoring.multiprocess_dir``, the sum over every worker (`multiprocess`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry
from redis.client import AbstractRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.off import Off
from blockmon.config.settings import MonitoringSettings, TracingSettings
from blockmon.metrics.cache import CacheCollector
from blockmon.metrics.multiprocess import Mirror, check_mode, publish_every, shared_registry
from blockmon.metrics.pool import PoolState, PoolWatch
from blockmon.metrics.postgres import PostgresMetrics
from blockmon.metrics.recorder import Timings
from blockmon.metrics.redis import RedisMetrics
from blockmon.postgres.hooks import OPERATION_OPTION
from blockmon.postgres.replicas import Router, engine_name, replica_pool_name
from blockmon.redis.cache import Cache

__all__ = [
    "OPERATION_OPTION",
    "Metrics",
    "PoolState",
    "create_registry",
    "exposed_registry",
    "metrics_resource",
    "replica_pool_name",
]


def create_registry(settings: MonitoringSettings) -> CollectorRegistry:
    return REGISTRY if settings.use_global_registry else CollectorRegistry(auto_describe=True)


@dataclass
class Metrics:
    """The instrumentation of one start; a part that is off (``enabled: false``) has none."""

    registry: CollectorRegistry
    postgres: PostgresMetrics | None
    redis: RedisMetrics | None
    pool: PoolWatch | None

    def timings(self) -> list[Timings]:
        return [t for owner in (self.postgres, self.redis) if owner for t in owner.timings.timings]


def exposed_registry(
    settings: MonitoringSettings, registry: CollectorRegistry, metrics: Metrics
) -> CollectorRegistry:
    """What /metrics shows: this container's registry, or in multi-process mode the sum
    over every worker's files."""
    if settings.multiprocess_dir is None:
        return registry
    return shared_registry(settings.multiprocess_dir, metrics.timings())


async def metrics_resource(
    settings: MonitoringSettings,
    registry: CollectorRegistry,
    engine: AsyncEngine | Off,
    redis: AbstractRedis | Off,
    cache: Cache | Off | None = None,
    router: Router | Off | None = None,
    tracing: TracingSettings | None = None,
) -> AsyncIterator[Metrics]:
    """Container Resource: instrument the engine, the router's read replicas (pools
    named ``replica-<index>``) and the client, those that are not off; undo it all at
    shutdown. In multi-process mode, a task copies the live state into the files every
    second. With tracing on (in one process) the duration histograms keep exemplars: the
    trace of a recent observation."""
    shared = check_mode(settings)
    exemplars = tracing is not None and tracing.enabled and not shared
    postgres, pool = None, None
    if isinstance(engine, AsyncEngine):
        postgres = PostgresMetrics(
            registry,
            slow_query_threshold=settings.slow_query_threshold,
            shared=shared,
            exemplars=exemplars,
        )
        pool = postgres.install(engine)
        for index, reader in enumerate(router.readers if isinstance(router, Router) else ()):
            postgres.install_replica(reader, replica_pool_name(index), engine_name(reader))
    client_metrics = None
    if not isinstance(redis, Off):
        client_metrics = RedisMetrics(registry, shared=shared, exemplars=exemplars)
        client_metrics.install(redis)
    owners = [owner for owner in (postgres, client_metrics) if owner is not None]
    collector = CacheCollector(cache) if isinstance(cache, Cache) else None
    if collector is not None:
        registry.register(collector)
    live = [c for owner in owners for c in owner.pool_collectors()]
    mirror = Mirror(live + ([collector] if collector is not None else [])) if shared else None
    publisher = asyncio.create_task(publish_every(mirror)) if mirror is not None else None
    try:
        yield Metrics(registry, postgres, client_metrics, pool)
    finally:
        if mirror is not None and publisher is not None:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            mirror.publish()  # the state at shutdown
        for owner in owners:
            owner.uninstall()
        if collector is not None:
            registry.unregister(collector)
        # The registry may outlive this start (a Singleton, or the global one): leave it
        # empty so that the next start registers again.
        for owner in owners:
            for family in owner.families:
                registry.unregister(family)
