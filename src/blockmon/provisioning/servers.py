"""Finding the servers: is the configured PostgreSQL or Redis reachable, and does
the configured database exist. Used by ``blockmon up`` and the pytest plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from pydantic import SecretStr

from blockmon.config.credentials import source_for
from blockmon.config.failures import connection_failure
from blockmon.config.secrets import redact
from blockmon.config.settings import PostgresSettings, RedisSettings, Settings
from blockmon.errors import BlockmonError
from blockmon.postgres.engine import asyncpg_url, engine_url, url_options
from blockmon.provisioning.embedded import EmbeddedServers
from blockmon.redis.client import create_client
from blockmon.redis.topology import close_client


async def connect(
    settings: PostgresSettings, *, database: str | None = None, timeout: float = 5.0
) -> asyncpg.Connection:
    """A plain asyncpg connection to the configured server (or another database on it):
    the URL's options, not the pool's settings (its ``application_name`` is not the
    application's, so the application's connections can be counted from it)."""
    written = engine_url(settings)
    options = url_options(written)
    # SQLAlchemy's option, not asyncpg's: in a DSN asyncpg would send it to the server.
    url = asyncpg_url(written).difference_update_query(["prepared_statement_cache_size"])
    if database is not None:
        url = url.set(database=database)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    extra: dict[str, Any] = {}
    source = source_for("postgres", settings)
    if source is not None:  # rotating credentials
        extra["password"] = source
    return await asyncpg.connect(
        dsn,
        timeout=timeout,
        command_timeout=timeout,
        ssl=options.ssl or settings.sslmode,
        server_settings=options.server_settings,
        **extra,
    )


async def postgres_problem(settings: PostgresSettings, timeout: float = 3.0) -> str | None:
    """None if the server answers, else why not (redacted). A missing database counts as reachable."""
    try:
        conn = await connect(settings, timeout=timeout)
    except asyncpg.InvalidCatalogNameError:
        return None
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        address = postgres_address(settings)
        return connection_failure(error, address=address, timeout=("", timeout))
    await conn.close(timeout=timeout)
    return None


async def ensure_database(settings: PostgresSettings, timeout: float = 5.0) -> str | None:
    """Create the database ``settings`` connect to if it is missing; its name if created."""
    name = engine_url(settings).database
    if not name:
        return None
    conn = await connect(settings, database="postgres", timeout=timeout)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return None
        await conn.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
        return name
    finally:
        await conn.close(timeout=timeout)


async def redis_problem(settings: RedisSettings, timeout: float = 3.0) -> str | None:
    """None if the server answers PING, else why not (redacted)."""
    fast = settings.model_copy(
        update={"socket_timeout": timeout, "socket_connect_timeout": timeout, "retries": 0}
    )
    client = create_client(fast)
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except Exception as error:
        return connection_failure(error, address=redis_address(settings), timeout=("", timeout))
    finally:
        await close_client(client)
    return None


def with_database(settings: PostgresSettings, name: str) -> PostgresSettings:
    """The same server settings pointed at another database."""
    if settings.url is None:
        return settings.model_copy(update={"database": name})
    url = engine_url(settings).set(database=name)
    return settings.model_copy(
        update={"url": SecretStr(url.render_as_string(hide_password=False)), "database": name}
    )


def postgres_address(settings: PostgresSettings) -> str:
    """``host:port`` (the hosts, or a Unix-socket folder) that ``settings`` connect to."""
    url = engine_url(settings)
    hosts = url.query.get("host")
    where = ",".join(hosts) if isinstance(hosts, tuple) else (hosts or "")
    return where or f"{url.host or 'localhost'}:{url.port or 5432}"


def postgres_target(settings: PostgresSettings) -> str:
    """``user:***@host:port/database``: what a command talks to; never a password."""
    if not settings.enabled:
        return "off (postgres.enabled: false)"
    url = engine_url(settings)
    user = f"{url.username}{':***' if url.password else ''}@" if url.username else ""
    return redact(f"{user}{postgres_address(settings)}/{url.database or ''}")


def redis_address(settings: RedisSettings) -> str:
    """``host:port``, a socket path, or the sentinels or cluster nodes ``settings`` use."""
    if settings.mode == "sentinel":
        return f"sentinel {settings.service_name} via {','.join(settings.sentinels)}"
    if settings.mode == "cluster":
        return f"cluster via {','.join(settings.cluster_nodes)}"
    if settings.url is None:
        return f"{settings.host}:{settings.port}"
    parts = urlsplit(settings.url.get_secret_value())
    return (
        f"unix:{parts.path}" if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
    )


def redis_target(settings: RedisSettings) -> str:
    """``user:***@host:port/db``: what a command talks to; never a password."""
    if not settings.enabled:
        return "off (redis.enabled: false)"
    where = redis_address(settings)
    if settings.mode != "standalone":
        return where
    if settings.url is None:
        user, secret, db = settings.username or "", settings.password is not None, str(settings.db)
    else:
        parts = urlsplit(settings.url.get_secret_value())
        if parts.scheme == "unix":
            return redact(where)
        user, secret, db = parts.username or "", bool(parts.password), parts.path.lstrip("/") or "0"
    at = f"{user}{':***' if secret else ''}@" if user or secret else ""
    return redact(f"{at}{where}/{db}")


async def resolve_servers(
    settings: Settings,
    *,
    servers: EmbeddedServers | None,
    notify: Callable[[str], None] = lambda message: None,
) -> Settings:
    """The configured servers if they answer; else embedded ones (when ``servers`` is
    given), else a `BlockmonError` that says what is missing and how to fix it."""
    pg, redis = settings.postgres, settings.redis
    problem = await postgres_problem(pg) if pg.enabled else None
    if problem is not None:
        if servers is None:
            raise BlockmonError(
                f"PostgreSQL is not reachable ({problem}); "
                "set DATABASE_URL or postgres.* in the config"
            )
        notify(
            f"PostgreSQL is not reachable ({problem}); starting an embedded one under {servers.home}"
        )
        pg = pg.model_copy(update={"url": SecretStr(servers.start_postgres())})
        pg = with_database(pg, settings.postgres.database)
    problem = await redis_problem(redis) if redis.enabled else None
    if problem is not None:
        if servers is None:
            raise BlockmonError(
                f"Redis is not reachable ({problem}); set REDIS_URL or redis.* in the config"
            )
        notify(f"Redis is not reachable ({problem}); starting an embedded one under {servers.home}")
        redis = redis.model_copy(update={"url": SecretStr(servers.start_redis())})
    return settings.model_copy(update={"postgres": pg, "redis": redis})
