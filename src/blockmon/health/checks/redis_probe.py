"""The Redis health check's own connection, apart from the application's pool.

Borrowing from the pool made the probe queue behind application load: with every
connection checked out it reported "timed out" although Redis answered, and the
client's retries with backoff could outlast the check's timeout. The probe has one
connection built from the pool's own connection class and settings (host, port, db,
TLS, ACL credentials, timeouts), without retries; it connects on first use, drops the
socket after any error so the next probe reconnects, and is closed by the health
Resource. In Sentinel mode the connection class asks the pool for the current master.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from blockmon._compat import redis as redis_compat

HEALTH_SUFFIX = "-health"


class RedisProbe:
    """One dedicated connection for INFO; safe to share between overlapping checks."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()  # a timed-out run may still unwind while the next starts
        self._closed = False

    def _new_connection(self) -> AbstractConnection:
        kwargs: dict[str, Any] = dict(self.pool.connection_kwargs)
        kwargs["retry"] = Retry(NoBackoff(), 0)  # the check's timeout is the only bound
        kwargs["retry_on_timeout"] = False
        kwargs.pop("retry_on_error", None)
        name = kwargs.get("client_name")
        kwargs["client_name"] = f"{name}{HEALTH_SUFFIX}" if name else None
        connection: AbstractConnection = self.pool.connection_class(**kwargs)
        return connection

    async def info(self) -> dict[str, Any]:
        """INFO (default sections) from the server, or from the current master."""
        async with self._lock:
            if self._closed:
                raise RedisConnectionError("the health probe is closed")
            if self._connection is None:
                self._connection = self._new_connection()
            connection = self._connection
            try:
                await self._follow_master(connection)
                if not connection.is_connected:
                    # connect() first: send_command on a closed connection skips the
                    # Sentinel class's connect() and would dial localhost:6379.
                    await connection.connect()  # type: ignore[no-untyped-call]
                await connection.send_command("INFO")
                response = await connection.read_response()
            except BaseException:
                await connection.disconnect(nowait=True)
                raise
        return redis_compat.parse_info(response)

    async def _follow_master(self, connection: AbstractConnection) -> None:
        """After a failover, leave the old master: the address comes from the pool's
        own resolution (which also updates the pool and drops its stale idle sockets)."""
        if not isinstance(self.pool, SentinelConnectionPool) or not connection.is_connected:
            return
        host, port = await self.pool.get_master_address()  # type: ignore[no-untyped-call]
        if (getattr(connection, "host", None), getattr(connection, "port", None)) != (host, port):
            await connection.disconnect()

    async def aclose(self) -> None:
        """Close the socket (bounded by the connect timeout); later probes fail."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
