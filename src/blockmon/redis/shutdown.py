"""The Redis client's end: shutdown waits for the commands in flight, and no connection is
opened after it.

redis-py's ``aclose()`` closes the idle connections and returns at once; a command in
flight keeps its connection, gives it back to the pool after, and the connection then
stays open. Worse, the pool is not closed for good: the next call connects again, so the
application goes on talking to Redis on a pool rebuilt behind its back.

`shut_down` (the client Resource's end) waits up to ``redis.shutdown_timeout`` until no
connection is checked out (commands, pipelines, pub/sub), then closes; from then on every
call fails at once with `RedisShutDown`, and a connection still out after the timeout is
closed when it comes back (in cluster mode, where redis-py's close cuts every connection
of a node, such a command fails). The refusal is put on the instance, as the metrics' wrappers
are: the pool's ``get_connection`` (standalone and Sentinel: commands, pipelines, pub/sub
all check out through it) or the cluster client's ``initialize`` (which a closed
``RedisCluster`` calls before each command and pipeline).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import RedisCluster

from blockmon._compat import redis as redis_compat
from blockmon.errors import BlockmonError
from blockmon.redis.topology import RedisClient, close_client


class RedisShutDown(BlockmonError):
    """A call reached a Redis client whose Resource was shut down."""


MESSAGE = (
    "redis: the client was shut down (its Resource stopped); start the container again "
    "to send commands"
)


def _out(client: RedisClient) -> int:
    """Connections of ``client`` checked out now (a cluster node whose count is unknown
    counts as 0)."""
    if isinstance(client, RedisCluster):
        counts = (redis_compat.node_counts(node) for node in client.get_nodes())
        return sum(c[0] for c in counts if c is not None)
    return redis_compat.pool_counts(getattr(client, "connection_pool", None))[0]


async def drain(client: RedisClient, timeout: float) -> int:
    """Wait up to ``timeout`` seconds until no connection of ``client`` is checked out;
    the number still out then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while _out(client) > 0 and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return _out(client)


async def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise RedisShutDown(MESSAGE)


def _close_on_release(pool: Any) -> None:
    """A connection given back to ``pool`` from now on is closed, not kept; closing the
    pool closes the idle ones only (redis-py would also cut the commands still in flight,
    whose retries would then connect again)."""
    release, disconnect = pool.release, pool.disconnect

    async def release_and_close(connection: Any) -> None:
        await release(connection)
        await connection.disconnect()

    async def disconnect_idle(inuse_connections: bool = True) -> None:
        await disconnect(inuse_connections=False)

    pool.release = release_and_close
    pool.disconnect = disconnect_idle


async def shut_down(client: RedisClient, timeout: float) -> None:
    """Wait up to ``timeout`` for the commands in flight, then close: no new connection is
    opened from here on (`RedisShutDown`), the idle ones are closed now, the ones still out
    when they come back (in cluster mode redis-py cuts those: they fail)."""
    try:
        await drain(client, timeout)
    finally:  # a cancelled shutdown closes at once
        if isinstance(client, RedisCluster):
            client.initialize = _refuse  # type: ignore[method-assign]
        else:
            pool = getattr(client, "connection_pool", None)
            if pool is not None:
                pool.get_connection = _refuse
                _close_on_release(pool)
        await close_client(client)
