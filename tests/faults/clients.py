"""blockmon containers pointed at a throwaway server or at a fault proxy, with short
timeouts so a fault shows within seconds."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from blockmon.cache import Cache
from blockmon.containers import PostgresContainer, RedisContainer
from blockmon.lifespan import Lifespan
from blockmon.transactions import Transactions

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
