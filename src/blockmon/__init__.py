"""blockmon: PostgreSQL and Redis for async Python services, as dependency-injector containers.

The names below are the public API. They are imported on first use, so that
``import blockmon`` (and the ``blockmon`` command's start) does not pay for SQLAlchemy,
redis-py and Alembic until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ApplicationContainer": "blockmon.containers",
    "MonitoringContainer": "blockmon.containers",
    "PostgresContainer": "blockmon.containers",
    "RedisContainer": "blockmon.containers",
    "Lifespan": "blockmon.lifespan",
    "monitoring_app": "blockmon.monitoring.lazy",
    "Settings": "blockmon.config.settings",
    "load_mapping": "blockmon.config.file",
    "load_settings": "blockmon.config.file",
    "Statements": "blockmon.postgres.statements",
    "Transactions": "blockmon.postgres.transactions",
    "Router": "blockmon.postgres.replicas",
    "Sessions": "blockmon.postgres.sessions",
    "Cache": "blockmon.redis.cache",
    "HealthChecker": "blockmon.health.checker",
    "Observation": "blockmon.health.model",
    "Status": "blockmon.health.model",
    "BlockmonError": "blockmon.errors",
    "ConfigError": "blockmon.errors",
    "MigrationError": "blockmon.errors",
    "NoHealthyReplica": "blockmon.errors",
}

__all__ = [
    "ApplicationContainer",
    "BlockmonError",
    "Cache",
    "ConfigError",
    "HealthChecker",
    "Lifespan",
    "MigrationError",
    "MonitoringContainer",
    "NoHealthyReplica",
    "Observation",
    "PostgresContainer",
    "RedisContainer",
    "Router",
    "Sessions",
    "Settings",
    "Statements",
    "Status",
    "Transactions",
    "__version__",
    "load_mapping",
    "load_settings",
    "monitoring_app",
]

if TYPE_CHECKING:
    from blockmon.config.file import load_mapping, load_settings
    from blockmon.config.settings import Settings
    from blockmon.containers import (
        ApplicationContainer,
        MonitoringContainer,
        PostgresContainer,
        RedisContainer,
    )
    from blockmon.errors import BlockmonError, ConfigError, MigrationError, NoHealthyReplica
    from blockmon.health.checker import HealthChecker
    from blockmon.health.model import Observation, Status
    from blockmon.lifespan import Lifespan
    from blockmon.monitoring.lazy import monitoring_app
    from blockmon.postgres.replicas import Router
    from blockmon.postgres.sessions import Sessions
    from blockmon.postgres.statements import Statements
    from blockmon.postgres.transactions import Transactions
    from blockmon.redis.cache import Cache


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'blockmon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
