"""The Redis client: a blocking pool (callers wait, bounded, instead of failing at once),
asyncio retries with exponential backoff, finite timeouts everywhere, and the hiredis
reply parser (redis-py picks it whenever hiredis is installed, as ``redis[hiredis]`` does).

``redis.mode`` picks the topology: standalone (this module), sentinel or cluster
(`blockmon.redis.topology`); the client's type is `RedisClient` either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import ConnectionError as RedisConnectionError

from blockmon._compat import redis as redis_compat
from blockmon.config.credentials import PasswordSource, source_for
from blockmon.config.settings import RedisSettings
from blockmon.errors import ConfigError
from blockmon.gate import Gate
from blockmon.redis.topology import (
    RedisClient,
    create_cluster_client,
    create_sentinel_client,
)


class PoolTimeout(RedisConnectionError):
    """No connection of the pool came free within ``redis.pool_timeout``: the pool is
    exhausted, the server may be fine. A redis-py ``ConnectionError``, as redis-py's own
    pool raises, so existing handlers still catch it."""


def _pool_timeout(pool: BlockingConnectionPool) -> PoolTimeout:
    """The error of a wait for a free connection that ``pool``'s timeout ended."""
    return PoolTimeout(
        f"No connection available: all {pool.max_connections} in use for "
        f"{pool.timeout} s (redis.max_connections, redis.pool_timeout)"
    )


class TimedOutPool(BlockingConnectionPool):
    """redis-py's own pool (the public fallback of `WaitingConnectionPool`) whose wait for
    a free connection ends in `PoolTimeout`, as ours does (it raises a plain
    ``ConnectionError`` from the wait's ``TimeoutError``, which reads as a lost
    connection)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisConnectionError as error:
            if isinstance(error, PoolTimeout) or not isinstance(error.__cause__, TimeoutError):
                raise
            raise _pool_timeout(self) from None


class WaitingConnectionPool(BlockingConnectionPool):
    """A BlockingConnectionPool whose callers wait first come, first served.

    redis-py's version enters a condition, arms a timer and polls a predicate on every
    checkout (about 20 µs per command, docs/performance.md), and a caller that just
    released a connection can take it back ahead of the callers queued for it, who then
    time out. Here a `blockmon.gate.Gate` as wide as the pool admits callers: a free
    connection is taken at once, and waiting is bounded by ``timeout``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = Gate(self.max_connections, self.timeout)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not await self._gate.acquire():
            raise _pool_timeout(self)
        try:
            connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        except BaseException:
            self._gate.release()
            raise
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        owned = redis_compat.in_use(self, connection)  # a second release frees no permit
        try:
            await super().release(connection)
        finally:
            if owned:
                self._gate.release()


class RotatingCredentials(CredentialProvider):
    """The password source of ``redis.password_file`` / ``_command`` / ``_provider``:
    redis-py asks it for each new connection (AUTH or HELLO in ``on_connect``)."""

    def __init__(self, username: str | None, source: PasswordSource) -> None:
        self.username = username
        self.source = source

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        raise NotImplementedError("blockmon's Redis client is asyncio only")

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        password = await self.source()
        return (self.username, password) if self.username else (password,)

    def __repr__(self) -> str:
        return f"RotatingCredentials(username={self.username!r})"


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
    """Our first-come first-served pool; redis-py's own when its internals changed."""
    kwargs = pool_kwargs(settings)
    pool_class = WaitingConnectionPool if redis_compat.LAYOUT.ok() else TimedOutPool
    if settings.url is not None:
        url = settings.url.get_secret_value()
        try:  # the scheme was checked with the settings
            return pool_class.from_url(url, **kwargs)
        except ValueError:
            raise ConfigError("redis.url: not a valid Redis URL") from None
    if settings.tls:
        kwargs["connection_class"] = SSLConnection
    source = source_for("redis", settings)
    if source is not None:  # rotating credentials: asked for each new connection
        kwargs["credential_provider"] = RotatingCredentials(settings.username, source)
        return pool_class(host=settings.host, port=settings.port, db=settings.db, **kwargs)
    return pool_class(
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
    """Container Resource: the client; at shutdown, the commands in flight get up to
    ``redis.shutdown_timeout`` seconds, then the client closes with its pool and every
    call after it fails at once (`blockmon.redis.shutdown`)."""
    from blockmon.redis.shutdown import shut_down

    client = create_client(settings)
    try:
        yield client
    finally:
        await shut_down(client, settings.shutdown_timeout)
