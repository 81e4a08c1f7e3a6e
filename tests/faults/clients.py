"""blockmon containers pointed at a throwaway server or at a fault proxy, with short
timeouts so a fault shows within seconds."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from blockmon.containers import PostgresContainer, RedisContainer
from blockmon.lifespan import Lifespan

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


@asynccontextmanager
async def postgres(config: dict[str, Any]) -> AsyncIterator[PostgresContainer]:
    """A started PostgresContainer; its Resources are shut down on exit."""
    container = PostgresContainer()
    container.config.from_dict(config)
    async with Lifespan(container):
        yield container


@asynccontextmanager
async def redis(config: dict[str, Any]) -> AsyncIterator[RedisContainer]:
    """A started RedisContainer; its Resources are shut down on exit."""
    container = RedisContainer()
    container.config.from_dict(config)
    async with Lifespan(container):
        yield container
