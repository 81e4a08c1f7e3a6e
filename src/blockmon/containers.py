"""The dependency-injection containers that applications compose into their own.

Each sub-container validates its own section of the configuration when its first
provider is used, so it also works on its own. Every Resource is async. ``tracing``
(the top-level section) reaches the engine, the client and the health checker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from dependency_injector import containers, providers
from redis.client import AbstractRedis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from blockmon.config.log import logging_resource
from blockmon.config.off import Off
from blockmon.config.settings import (
    LogSettings,
    MigrationSettings,
    MonitoringSettings,
    PostgresSettings,
    RedisSettings,
    Settings,
    TracingSettings,
    validate,
)
from blockmon.health.resource import health_resource
from blockmon.metrics import create_registry, exposed_registry, metrics_resource
from blockmon.migrations.api import schema_probe_for
from blockmon.monitoring.app import create_app
from blockmon.monitoring.readiness import Readiness
from blockmon.postgres.replicas import Router, router_resource
from blockmon.postgres.sessions import Sessions
from blockmon.postgres.statements import Statements
from blockmon.postgres.transactions import Transactions
from blockmon.redis.cache import Cache
from blockmon.tracing import traced_client_resource, traced_engine_resource

T = TypeVar("T")


async def bound(build: Callable[..., T], *args: Any, **kwargs: Any) -> AsyncIterator[T | Off]:
    """A Resource built over other Resources: made anew on each start, so it never keeps
    the engine or client of an earlier start (a Singleton would); off when what it is
    built over is off."""
    off = next((a for a in (*args, *kwargs.values()) if isinstance(a, Off)), None)
    yield off if off is not None else build(*args, **kwargs)


async def switched(
    resource: Callable[..., AsyncIterator[T]],
    settings: PostgresSettings | RedisSettings,
    *args: Any,
) -> AsyncIterator[T | Off]:
    """``resource`` unless its section says ``enabled: false``; then an `Off`."""
    if not settings.enabled:
        yield Off("postgres" if isinstance(settings, PostgresSettings) else "redis")
        return
    async with asynccontextmanager(resource)(settings, *args) as value:
        yield value


class PostgresContainer(containers.DeclarativeContainer):
    """``engine`` (AsyncEngine Resource), ``session_factory``, ``transactions``, ``statements``;
    ``router`` picks a read replica per operation (docs/topologies.md); ``sessions`` hands
    out request-scoped write and read sessions (`blockmon.fastapi`, `blockmon.litestar`)."""

    config = providers.Configuration()
    settings = providers.Singleton(validate, PostgresSettings, config, "postgres")
    tracing: providers.Dependency[TracingSettings] = providers.Dependency(
        instance_of=TracingSettings, default=providers.Singleton(TracingSettings)
    )
    engine = providers.Resource(switched, traced_engine_resource, settings, tracing)
    session_factory = providers.Resource(bound, async_sessionmaker, engine, expire_on_commit=False)
    transactions = providers.Resource(bound, Transactions, session_factory)
    statements = providers.Resource(
        bound, Statements, engine, pgbouncer=settings.provided.pgbouncer
    )
    router = providers.Resource(switched, router_resource, settings, engine)
    sessions = providers.Resource(bound, Sessions, session_factory, router)


class RedisContainer(containers.DeclarativeContainer):
    """``client`` (redis.asyncio.Redis Resource) and ``cache``."""

    config = providers.Configuration()
    settings = providers.Singleton(validate, RedisSettings, config, "redis")
    tracing: providers.Dependency[TracingSettings] = providers.Dependency(
        instance_of=TracingSettings, default=providers.Singleton(TracingSettings)
    )
    client = providers.Resource(switched, traced_client_resource, settings, tracing)
    cache = providers.Resource(bound, Cache, client, prefix=settings.provided.key_prefix)


class MonitoringContainer(containers.DeclarativeContainer):
    """Health checks and metrics over the engine and the Redis client.

    ``registry`` (a CollectorRegistry of its own), ``metrics`` (instrumentation Resource),
    ``health`` (HealthChecker Resource with its periodic loop), ``readiness`` (what /readyz
    says apart from the checks: starting, shutting down) and ``app`` (the Starlette
    monitoring app). ``schema_probe`` (the ``postgres:schema`` check) compares the schema
    with blockmon's migrations' heads, and the application's (``migrations.heads_from``).
    """

    config = providers.Configuration()
    settings = providers.Singleton(validate, MonitoringSettings, config, "monitoring")
    # An AsyncEngine and an AbstractRedis (the common base of Redis, Sentinel and
    # RedisCluster clients), or Off when the section says enabled: false (no check, no
    # metrics for it): two kinds, which instance_of cannot name.
    engine: providers.Dependency[AsyncEngine | Off] = providers.Dependency()
    redis: providers.Dependency[AbstractRedis | Off] = providers.Dependency()
    cache: providers.Dependency[Cache | None] = providers.Dependency(default=providers.Object(None))
    # Read replicas get a health check and pool metrics each (docs/topologies.md).
    router: providers.Dependency[Router | None] = providers.Dependency(
        default=providers.Object(None)
    )
    migration_settings: providers.Dependency[MigrationSettings] = providers.Dependency(
        instance_of=MigrationSettings, default=providers.Singleton(MigrationSettings)
    )
    tracing: providers.Dependency[TracingSettings] = providers.Dependency(
        instance_of=TracingSettings, default=providers.Singleton(TracingSettings)
    )
    schema_probe = providers.Singleton(schema_probe_for, migration_settings)
    registry = providers.Singleton(create_registry, settings)
    metrics = providers.Resource(
        metrics_resource, settings, registry, engine, redis, cache, router, tracing
    )
    health = providers.Resource(
        health_resource, settings, engine, redis, metrics, schema_probe, router, tracing
    )
    # /metrics: the registry, or in multi-process mode the sum over workers' files
    exposed = providers.Factory(exposed_registry, settings, registry, metrics)
    # refuses /readyz while the Lifespan starts or stops the Resources (docs/deployment.md)
    readiness = providers.Singleton(Readiness)
    app = providers.Factory(create_app, health, exposed, settings, readiness)


class ApplicationContainer(containers.DeclarativeContainer):
    """All of blockmon: compose it with ``providers.Container(ApplicationContainer, config=...)``."""

    config = providers.Configuration()
    settings = providers.Singleton(validate, Settings, config)
    logging = providers.Resource(
        logging_resource, providers.Singleton(validate, LogSettings, config.log, "log")
    )
    tracing = providers.Singleton(validate, TracingSettings, config.tracing, "tracing")
    postgres = providers.Container(PostgresContainer, config=config.postgres, tracing=tracing)
    redis = providers.Container(RedisContainer, config=config.redis, tracing=tracing)
    monitoring = providers.Container(
        MonitoringContainer,
        config=config.monitoring,
        engine=postgres.engine,
        redis=redis.client,
        cache=redis.cache,
        router=postgres.router,
        migration_settings=settings.provided.migrations,
        tracing=tracing,
    )
