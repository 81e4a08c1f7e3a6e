"""The dependency-injection containers that applications compose into their own.

Each sub-container validates its own section of the configuration when its first
provider is used, so it also works on its own. Every Resource is async. ``tracing``
(the top-level section) reaches the engine, the client and the health checker.
"""

from __future__ import annotations

from dependency_injector import containers, providers
from redis.client import AbstractRedis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from blockmon.config.log import logging_resource
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
from blockmon.postgres.replicas import Router, router_resource
from blockmon.postgres.statements import Statements
from blockmon.postgres.transactions import Transactions
from blockmon.redis.cache import Cache
from blockmon.tracing import traced_client_resource, traced_engine_resource


class PostgresContainer(containers.DeclarativeContainer):
    """``engine`` (AsyncEngine Resource), ``session_factory``, ``transactions``, ``statements``;
    ``router`` picks a read replica per operation (docs/topologies.md)."""

    config = providers.Configuration()
    settings = providers.Singleton(validate, PostgresSettings, config, "postgres")
    tracing: providers.Dependency[TracingSettings] = providers.Dependency(
        instance_of=TracingSettings, default=providers.Singleton(TracingSettings)
    )
    engine = providers.Resource(traced_engine_resource, settings, tracing)
    session_factory = providers.Singleton(async_sessionmaker, engine, expire_on_commit=False)
    transactions = providers.Singleton(Transactions, session_factory)
    statements = providers.Singleton(
        Statements, engine, autocommit=settings.provided.autocommit_safe
    )
    router = providers.Resource(router_resource, settings, engine)


class RedisContainer(containers.DeclarativeContainer):
    """``client`` (redis.asyncio.Redis Resource) and ``cache``."""

    config = providers.Configuration()
    settings = providers.Singleton(validate, RedisSettings, config, "redis")
    tracing: providers.Dependency[TracingSettings] = providers.Dependency(
        instance_of=TracingSettings, default=providers.Singleton(TracingSettings)
    )
    client = providers.Resource(traced_client_resource, settings, tracing)
    cache = providers.Singleton(Cache, client, prefix=settings.provided.key_prefix)


class MonitoringContainer(containers.DeclarativeContainer):
    """Health checks and metrics over the engine and the Redis client.

    ``registry`` (a CollectorRegistry of its own), ``metrics`` (instrumentation Resource),
    ``health`` (HealthChecker Resource with its periodic loop) and ``app`` (the Starlette
    monitoring app). ``schema_probe`` (the ``postgres:schema`` check) compares the schema
    with blockmon's migrations' heads, and the application's (``migrations.heads_from``).
    """

    config = providers.Configuration()
    settings = providers.Singleton(validate, MonitoringSettings, config, "monitoring")
    engine: providers.Dependency[AsyncEngine] = providers.Dependency(instance_of=AsyncEngine)
    # AbstractRedis: the common base of Redis (standalone, sentinel) and RedisCluster.
    redis: providers.Dependency[AbstractRedis] = providers.Dependency(instance_of=AbstractRedis)
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
    app = providers.Factory(create_app, health, exposed, settings)


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
