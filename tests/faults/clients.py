"""blockmon containers pointed at a throwaway server or at a fault proxy, with short
timeouts so a fault shows within seconds."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from dependency_injector import providers
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from blockmon.containers import ApplicationContainer, PostgresContainer, RedisContainer
from blockmon.health import CheckResult, HealthChecker, Status
from blockmon.lifespan import Lifespan
from blockmon.postgres.transactions import Transactions
from blockmon.redis.cache import Cache

# Short but finite: a healthy local round trip takes milliseconds even on a loaded box.
PG_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 2.0,
    "statement_timeout": 2.5,
    "command_timeout": 3.0,
    "pool_timeout": 4.0,
}
REDIS_TIMEOUTS: dict[str, Any] = {
    "socket_timeout": 2.0,
    "socket_connect_timeout": 1.0,
    "pool_timeout": 3.0,
}


def pg_config(port: int, **overrides: Any) -> dict[str, Any]:
    """A ``postgres`` section for the server (or proxy) on 127.0.0.1:``port``."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "user": "postgres",
        "database": "postgres",
        "sslmode": "disable",
        "application_name": f"bm-fault-{secrets.token_hex(4)}",
        **PG_TIMEOUTS,
        **overrides,
    }


def redis_config(port: int, **overrides: Any) -> dict[str, Any]:
    """A ``redis`` section for the server (or proxy) on 127.0.0.1:``port``."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "client_name": f"bm-fault-{secrets.token_hex(4)}",
        "key_prefix": f"fault:{secrets.token_hex(4)}:",
        **REDIS_TIMEOUTS,
        **overrides,
    }


def queue_pool(engine: AsyncEngine) -> QueuePool:
    """The engine's pool, typed so that checkedin()/checkedout() are known."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool


@dataclass
class PostgresHandles:
    container: PostgresContainer
    engine: AsyncEngine
    transactions: Transactions


@dataclass
class RedisHandles:
    container: RedisContainer
    client: Redis
    cache: Cache


@asynccontextmanager
async def postgres(config: dict[str, Any]) -> AsyncIterator[PostgresHandles]:
    """A started PostgresContainer and what it provides; shut down on exit."""
    container = PostgresContainer()
    container.config.from_dict(config)
    async with Lifespan(container):
        provided: Any = container
        yield PostgresHandles(container, await provided.engine(), await provided.transactions())


@asynccontextmanager
async def redis(config: dict[str, Any]) -> AsyncIterator[RedisHandles]:
    """A started RedisContainer and what it provides; shut down on exit."""
    container = RedisContainer()
    container.config.from_dict(config)
    async with Lifespan(container):
        provided: Any = container
        yield RedisHandles(container, await provided.client(), await provided.cache())


@dataclass
class MonitoredHandles:
    container: ApplicationContainer
    engine: AsyncEngine
    transactions: Transactions
    client: Redis
    cache: Cache
    checker: HealthChecker
    registry: CollectorRegistry

    def sample(self, name: str, **labels: str) -> float:
        """One sample from the container's own registry (0 when not yet observed)."""
        return self.registry.get_sample_value(name, labels) or 0.0


# Short on-demand health: a probe asked every 0.1 s sees the server's state, bounded.
MONITORING: dict[str, Any] = {"check_timeout": 2.0, "cache_ttl": 0.1, "health_interval": 3600}


@asynccontextmanager
async def monitored(
    pg: dict[str, Any], rd: dict[str, Any], **monitoring: Any
) -> AsyncIterator[MonitoredHandles]:
    """A started ApplicationContainer (PostgreSQL, Redis, health and metrics); the schema
    probe is off, as the throwaway server has no migrations."""
    container = ApplicationContainer()
    container.config.from_dict(
        {"postgres": pg, "redis": rd, "monitoring": {**MONITORING, **monitoring}}
    )
    provided: Any = container
    provided.monitoring.schema_probe.override(providers.Object(None))
    async with Lifespan(container):
        yield MonitoredHandles(
            container,
            await provided.postgres.engine(),
            await provided.postgres.transactions(),
            await provided.redis.client(),
            await provided.redis.cache(),
            await provided.monitoring.health(),
            provided.monitoring.registry(),
        )


async def wait_for_status(
    checker: HealthChecker, name: str, wanted: set[Status], bound: float
) -> CheckResult:
    """Ask ``checker`` for ``name`` (on demand, through its cache) until the status is
    one of ``wanted``; fails the test after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while True:
        result = await asyncio.wait_for(checker.check(name), bound)
        if result.status in wanted:
            return result
        assert time.monotonic() < deadline, f"{name} health stayed {result.status}: {result}"
        await asyncio.sleep(0.1)
