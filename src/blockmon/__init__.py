"""blockmon: PostgreSQL and Redis for async Python services, as dependency-injector containers.

The names below are the public API: every type a user receives, catches or annotates is one
of them. They are imported on first use, so that ``import blockmon`` (and the ``blockmon``
command's start) does not pay for SQLAlchemy, redis-py and Alembic until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "ApplicationContainer": "blockmon.containers",
    "MonitoringContainer": "blockmon.containers",
    "PostgresContainer": "blockmon.containers",
    "RedisContainer": "blockmon.containers",
    "Lifespan": "blockmon.lifespan",
    "MonitoringApp": "blockmon.monitoring.lazy",
    "monitoring_app": "blockmon.monitoring.lazy",
    "Readiness": "blockmon.monitoring.readiness",
    "CheckSettings": "blockmon.config.settings",
    "LogSettings": "blockmon.config.settings",
    "MigrationSettings": "blockmon.config.settings",
    "MonitoringSettings": "blockmon.config.settings",
    "PostgresSettings": "blockmon.config.settings",
    "RedisSettings": "blockmon.config.settings",
    "Settings": "blockmon.config.settings",
    "TracingSettings": "blockmon.config.settings",
    "load_mapping": "blockmon.config.file",
    "load_settings": "blockmon.config.file",
    "Record": "blockmon.postgres.statements",
    "StatementTransaction": "blockmon.postgres.statements",
    "Statements": "blockmon.postgres.statements",
    "Transactions": "blockmon.postgres.transactions",
    "sqlstate": "blockmon.postgres.transactions",
    "Router": "blockmon.postgres.replicas",
    "Sessions": "blockmon.postgres.sessions",
    "EngineShutDown": "blockmon.postgres.shutdown",
    "Cache": "blockmon.redis.cache",
    "PoolTimeout": "blockmon.redis.client",
    "RedisShutDown": "blockmon.redis.shutdown",
    "HealthChecker": "blockmon.health.checker",
    "StateChange": "blockmon.health.checker",
    "CheckResult": "blockmon.health.model",
    "Observation": "blockmon.health.model",
    "Report": "blockmon.health.model",
    "Status": "blockmon.health.model",
    "BlockmonError": "blockmon.errors",
    "ConfigError": "blockmon.errors",
    "CredentialError": "blockmon.errors",
    "Disabled": "blockmon.errors",
    "EmbeddedUnavailable": "blockmon.errors",
    "MigrationError": "blockmon.errors",
    "MigrationLockTimeout": "blockmon.errors",
    "NoHealthyReplica": "blockmon.errors",
    "RevisionFailed": "blockmon.errors",
    "ServerStartError": "blockmon.errors",
    "UsageError": "blockmon.errors",
}

__all__ = [
    "ApplicationContainer",
    "BlockmonError",
    "Cache",
    "CheckResult",
    "CheckSettings",
    "ConfigError",
    "CredentialError",
    "Disabled",
    "EmbeddedUnavailable",
    "EngineShutDown",
    "HealthChecker",
    "Lifespan",
    "LogSettings",
    "MigrationError",
    "MigrationLockTimeout",
    "MigrationSettings",
    "MonitoringApp",
    "MonitoringContainer",
    "MonitoringSettings",
    "NoHealthyReplica",
    "Observation",
    "PoolTimeout",
    "PostgresContainer",
    "PostgresSettings",
    "Readiness",
    "Record",
    "RedisContainer",
    "RedisSettings",
    "RedisShutDown",
    "Report",
    "RevisionFailed",
    "Router",
    "ServerStartError",
    "Sessions",
    "Settings",
    "StateChange",
    "StatementTransaction",
    "Statements",
    "Status",
    "TracingSettings",
    "Transactions",
    "UsageError",
    "__version__",
    "load_mapping",
    "load_settings",
    "monitoring_app",
    "sqlstate",
]

if TYPE_CHECKING:
    from blockmon.config.file import load_mapping, load_settings
    from blockmon.config.settings import (
        CheckSettings,
        LogSettings,
        MigrationSettings,
        MonitoringSettings,
        PostgresSettings,
        RedisSettings,
        Settings,
        TracingSettings,
    )
    from blockmon.containers import (
        ApplicationContainer,
        MonitoringContainer,
        PostgresContainer,
        RedisContainer,
    )
    from blockmon.errors import (
        BlockmonError,
        ConfigError,
        CredentialError,
        Disabled,
        EmbeddedUnavailable,
        MigrationError,
        MigrationLockTimeout,
        NoHealthyReplica,
        RevisionFailed,
        ServerStartError,
        UsageError,
    )
    from blockmon.health.checker import HealthChecker, StateChange
    from blockmon.health.model import CheckResult, Observation, Report, Status
    from blockmon.lifespan import Lifespan
    from blockmon.monitoring.lazy import MonitoringApp, monitoring_app
    from blockmon.monitoring.readiness import Readiness
    from blockmon.postgres.replicas import Router
    from blockmon.postgres.sessions import Sessions
    from blockmon.postgres.shutdown import EngineShutDown
    from blockmon.postgres.statements import Record, Statements, StatementTransaction
    from blockmon.postgres.transactions import Transactions, sqlstate
    from blockmon.redis.cache import Cache
    from blockmon.redis.client import PoolTimeout
    from blockmon.redis.shutdown import RedisShutDown


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'blockmon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
