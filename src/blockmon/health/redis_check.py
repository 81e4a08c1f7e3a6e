"""The AbstractRedis check: one INFO round trip giving version, role, memory and clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from redis.client import AbstractRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from blockmon.health.model import Observation


def redis_check(
    client: AbstractRedis, on_memory: Callable[[int], None] | None = None
) -> Callable[[], Awaitable[list[Observation]]]:
    """An async check function; ``on_memory`` receives ``used_memory`` in bytes."""

    async def check() -> list[Observation]:
        try:
            # Plain INFO: one round trip; several sections at once need Redis 7.
            info = await client.info()  # type: ignore[attr-defined]
        except RedisConnectionError:
            # Drop idle sockets now rather than one failed command at a time later
            # (a cluster client has a pool per node and heals itself).
            pool = getattr(client, "connection_pool", None)
            if pool is not None:
                await pool.disconnect(inuse_connections=False)
            raise
        memory = int(info.get("used_memory", 0))
        if on_memory is not None:
            on_memory(memory)
        return [
            Observation("version", info.get("redis_version")),
            Observation("role", info.get("role")),
            Observation("memory", memory, "bytes"),
            Observation("clients", int(info.get("connected_clients", 0)), "clients"),
        ]

    return check
