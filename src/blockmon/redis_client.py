"""The Redis client: a blocking pool (callers wait, bounded, instead of failing at once),
asyncio retries with exponential backoff, and finite timeouts everywhere.

``redis.mode`` picks the topology: standalone (this module), sentinel or cluster
(`blockmon.redis_topology`); the client's type is `RedisClient` either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from blockmon.errors import ConfigError
from blockmon.redis_topology import (
    RedisClient,
    close_client,
    create_cluster_client,
    create_sentinel_client,
)
from blockmon.settings import RedisSettings

_SCHEMES = {"redis", "rediss", "unix"}


def pool_kwargs(settings: RedisSettings) -> dict[str, Any]:
    retry = Retry(
        ExponentialWithJitterBackoff(
            cap=settings.retry_backoff_cap, base=settings.retry_backoff_base
        ),
        settings.retries,
    )
    return {
        "max_connections": settings.max_connections,
        "timeout": settings.pool_timeout,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "retry": retry,
        "health_check_interval": settings.health_check_interval,
        "client_name": settings.client_name,
    }


def create_pool(settings: RedisSettings) -> BlockingConnectionPool:
    kwargs = pool_kwargs(settings)
    if settings.url is not None:
        url = settings.url.get_secret_value()
        scheme = urlsplit(url).scheme
        if scheme not in _SCHEMES:
            raise ConfigError(
                f"redis.url: scheme must be redis://, rediss:// or unix://, got {scheme or '(none)'}"
            )
        try:
            return BlockingConnectionPool.from_url(url, **kwargs)
        except ValueError:
            raise ConfigError("redis.url: not a valid Redis URL") from None
    if settings.tls:
        kwargs["connection_class"] = SSLConnection
    return BlockingConnectionPool(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        **kwargs,
    )


def create_client(settings: RedisSettings) -> RedisClient:
    """Build (but do not connect) a client for ``settings.mode`` that owns its pool."""
    if settings.mode == "sentinel":
        return create_sentinel_client(settings, pool_kwargs(settings))
    if settings.mode == "cluster":
        return create_cluster_client(settings, pool_kwargs(settings))
    return Redis.from_pool(create_pool(settings))


async def client_resource(settings: RedisSettings) -> AsyncIterator[RedisClient]:
    """Container Resource: the client, closed with its pool at shutdown."""
    client = create_client(settings)
    try:
        yield client
    finally:
        await close_client(client)
