"""The Redis check: one INFO round trip on the probe's own connection, giving version,
role, memory and clients, plus the application pool's usage (read, never borrowed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from redis.asyncio import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from blockmon._compat.redis import pool_counts
from blockmon.health.checks.redis_probe import RedisProbe
from blockmon.health.model import Observation, Status


def redis_check(
    probe: RedisProbe,
    on_memory: Callable[[int, int], None] | None = None,
    *,
    saturation_warn: float = 0.9,
    on_up: Callable[[], None] | None = None,
    on_lost: Callable[[BaseException], None] | None = None,
) -> Callable[[], Awaitable[list[Observation]]]:
    """An async check function; ``on_memory`` receives ``used_memory`` and ``maxmemory`` in bytes;
    ``on_up`` / ``on_lost`` keep the connection lifecycle log informed while the
    application sends nothing."""

    async def check() -> list[Observation]:
        try:
            # Plain INFO: one round trip; several sections at once need Redis 7.
            info = await probe.info()
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            if on_lost is not None:
                on_lost(error)
            if isinstance(error, RedisConnectionError):
                # Drop the application's idle sockets now rather than one failed
                # command at a time later.
                await probe.pool.disconnect(inuse_connections=False)
            raise
        if on_up is not None:
            on_up()
        memory = int(info.get("used_memory", 0))
        if on_memory is not None:
            on_memory(memory, int(info.get("maxmemory", 0)))
        return [
            Observation("version", info.get("redis_version")),
            Observation("role", info.get("role")),
            Observation("memory", memory, "bytes"),
            Observation("clients", int(info.get("connected_clients", 0)), "clients"),
            pool_observation(probe.pool, saturation_warn),
        ]

    return check


def pool_observation(pool: ConnectionPool, saturation_warn: float) -> Observation:
    """The application pool's used/idle/max; warn when nearly full, as for PostgreSQL
    (redis-py does not count the callers waiting for a connection)."""
    used, idle = pool_counts(pool)
    limit = int(pool.max_connections)
    value = {"used": used, "idle": idle, "max": limit}
    if limit and used >= saturation_warn * limit:
        output = f"pool saturated: {used}/{limit} in use"
        return Observation("connections", value, "connections", Status.WARN, output)
    return Observation("connections", value, "connections")
