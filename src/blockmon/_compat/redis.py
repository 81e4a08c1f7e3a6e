"""redis-py internals: pool counts by state, a cluster node's own pool, INFO parsing, and
the set of in-use connections that `blockmon.redis.client.WaitingConnectionPool` checks.

- `pool_counts`: ``_in_use_connections`` / ``_available_connections`` (idle ones counted
  only while connected). Fallback: the public ``get_connection_count()`` (idle includes
  connections whose socket is closed).
- `node_counts`: a cluster node's ``_connections`` / ``_free``. Fallback: None (unknown;
  no public count exists).
- `parse_info`: ``redis._parsers.helpers.parse_info``. Fallback: the INFO callback of a
  client's public ``response_callbacks``.
- `LAYOUT.ok()` also decides the Redis pool class: when False, redis-py's own
  ``BlockingConnectionPool`` (not first-come first-served) replaces ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode

from blockmon._compat import Layout

_STATE = "db.client.connection.state"  # OpenTelemetry's attribute, as get_connection_count names it


def _probe() -> bool:
    from redis._parsers.helpers import parse_info

    pool: Any = ConnectionPool()
    node: Any = ClusterNode("127.0.0.1", 6379)
    return (
        isinstance(pool._available_connections, list)
        and len(pool._in_use_connections) == 0
        and callable(pool.get_available_connection)
        and callable(pool.ensure_connection)
        and isinstance(node._connections, list)
        and len(node._free) == 0
        and parse_info(b"redis_version:8.0.0\r\nused_memory:1024\r\n")  # type: ignore[no-untyped-call]
        == {"redis_version": "8.0.0", "used_memory": 1024}
    )


LAYOUT = Layout("redis", _probe)


def _connected(connections: Iterable[Any]) -> int:
    return sum(1 for c in connections if getattr(c, "is_connected", True))


def pool_counts(pool: Any) -> tuple[int, int]:
    """(in use, idle) of a ConnectionPool; (0, 0) for no pool."""
    if pool is None:
        return 0, 0
    if LAYOUT.ok():
        return len(pool._in_use_connections), _connected(pool._available_connections)
    counts = {attributes.get(_STATE): count for count, attributes in pool.get_connection_count()}
    return counts.get("used", 0), counts.get("idle", 0)


def node_counts(node: ClusterNode) -> tuple[int, int] | None:
    """(in use, idle) of a cluster node's own pool; None when unknown."""
    if not LAYOUT.ok():
        return None
    every: Any = node._connections
    free: Any = node._free
    return len(every) - len(free), _connected(free)


def in_use(pool: ConnectionPool, connection: Any) -> bool:
    """Whether ``connection`` is checked out of ``pool`` (only called when `LAYOUT.ok()`)."""
    return connection in pool._in_use_connections


def parse_info(response: Any) -> dict[str, Any]:
    """An INFO reply as a dict, as ``Redis.info()`` returns it."""
    if LAYOUT.ok():
        from redis._parsers.helpers import parse_info as private

        parsed: dict[str, Any] = private(response)  # type: ignore[no-untyped-call]
        return parsed
    # A client that never connects: only its public response callbacks are used.
    callbacks: Any = Redis().response_callbacks
    fallback: dict[str, Any] = callbacks["INFO"](response)
    return fallback
