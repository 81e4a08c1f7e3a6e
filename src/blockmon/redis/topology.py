"""Redis beyond one server: a Sentinel-managed master and Redis Cluster.

Both clients follow a failover on their own: a Sentinel pool asks the sentinels for
the master's address on every new connection and drops connections to a demoted one;
a cluster client re-reads the slot map when a node fails or answers MOVED.
Their health (the current master, cluster state and slots) is read by
`blockmon.health.checks.redis_topology`.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import RedisClusterException, RedisError

from blockmon.config.settings import RedisSettings

RedisClient = Redis | RedisCluster


def parse_host_port(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[::1]:port"`` (already checked by the settings) to a pair."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def create_sentinel_client(settings: RedisSettings, kwargs: dict[str, Any]) -> Redis:
    """A client for the current master of ``settings.service_name``.

    ``kwargs`` are the connection settings shared with standalone mode; the sentinels
    themselves get the same timeouts and their own credentials."""
    sentinel_kwargs = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "username": settings.sentinel_username,
        "password": _secret(settings.sentinel_password),
        "ssl": settings.tls,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        [parse_host_port(a) for a in settings.sentinels], sentinel_kwargs=sentinel_kwargs
    )
    pool_kwargs = {k: v for k, v in kwargs.items() if k != "timeout"}  # a non-blocking pool
    client: Redis = sentinel.master_for(
        settings.service_name or "",
        db=settings.db,
        username=settings.username,
        password=_secret(settings.password),
        ssl=settings.tls,
        **pool_kwargs,
    )
    return client


def create_cluster_client(settings: RedisSettings, kwargs: dict[str, Any]) -> RedisCluster:
    """A cluster client seeded from ``cluster_nodes`` (or host:port); it discovers the rest."""
    seeds = settings.cluster_nodes or [f"{settings.host}:{settings.port}"]
    cluster_kwargs = {k: v for k, v in kwargs.items() if k != "timeout"}
    return RedisCluster(
        startup_nodes=[ClusterNode(*parse_host_port(a)) for a in seeds],
        username=settings.username,
        password=_secret(settings.password),
        ssl=settings.tls,
        **cluster_kwargs,
    )


async def close_client(client: RedisClient) -> None:
    """Close the client, its pool, and for Sentinel mode the connections to the sentinels."""
    pool = getattr(client, "connection_pool", None)
    await client.aclose()
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


# What an unreachable or failing server raises; RedisClusterException (e.g.
# SlotNotCoveredError) is not a RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
