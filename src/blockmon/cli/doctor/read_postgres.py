"""Reading PostgreSQL's limits and, when the URL goes through PgBouncer, PgBouncer's
pool settings from its admin console (which speaks only the simple query protocol, so
it is read with psycopg's client-side-binding cursor; asyncpg cannot)."""

from __future__ import annotations

from typing import Any

import asyncpg

from blockmon.cli.doctor.facts import BouncerFacts, Facts, PostgresFacts
from blockmon.config.credentials import source_for
from blockmon.config.failures import connection_failure
from blockmon.config.secrets import redact
from blockmon.config.settings import PostgresSettings
from blockmon.errors import CredentialError
from blockmon.postgres.engine import engine_url
from blockmon.provisioning.servers import postgres_address

_LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,
       r.rolname AS role, r.rolsuper AS role_superuser, r.rolconnlimit AS role_limit,
       d.datconnlimit AS database_limit,
       (SELECT setting::bigint FROM pg_settings
         WHERE name = 'idle_in_transaction_session_timeout') AS idle_in_transaction_ms,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout')
         AS statement_timeout_ms,
       current_setting('ssl') = 'on' AS server_ssl,
       coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl_in_use,
       inet_server_port() AS server_port,
       current_setting('server_version') AS version
  FROM pg_roles r, pg_database d
 WHERE r.rolname = current_user AND d.datname = current_database()
"""
_SESSIONS = """
SELECT coalesce(application_name, '') AS name, usename = current_user AS same_role,
       count(*)::int AS n
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
 GROUP BY 1, 2
"""


async def read_postgres(settings: PostgresSettings, facts: Facts, timeout: float) -> None:
    """Fill ``facts.postgres`` (or ``postgres_error``), then PgBouncer's when it is
    configured (``postgres.pgbouncer``) or the server listens on another port than the
    URL names (something sits between)."""
    url = engine_url(settings)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    ssl: dict[str, Any] = {} if "sslmode" in url.query else {"ssl": settings.sslmode}
    source = source_for("postgres", settings)
    if source is not None:
        ssl["password"] = source
    try:
        # No statement cache: through PgBouncer's transaction pooling, named statements
        # would collide with other clients'.
        conn = await _connect(dsn, timeout, ssl)
    except asyncpg.InvalidCatalogNameError:
        # Before the first deploy: the server's limits are read from its postgres database.
        facts.notes.append(
            f"postgres: database {url.database} does not exist yet (blockmon up creates it); "
            "read the server through the postgres database"
        )
        dsn = url.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        )
        try:
            conn = await _connect(dsn, timeout, ssl)
        except (TimeoutError, OSError, asyncpg.PostgresError, CredentialError) as error:
            where = postgres_address(settings)
            facts.postgres_error = connection_failure(error, address=where, timeout=("", timeout))
            return
    except (TimeoutError, OSError, asyncpg.PostgresError, CredentialError) as error:
        where = postgres_address(settings)
        facts.postgres_error = connection_failure(error, address=where, timeout=("", timeout))
        return
    try:
        row = await conn.fetchrow(_LIMITS)
        sessions = await conn.fetch(_SESSIONS)
    finally:
        await conn.close(timeout=timeout)
    assert row is not None
    by_name: dict[str, int] = {}
    for session in sessions:
        by_name[session["name"]] = by_name.get(session["name"], 0) + session["n"]
    facts.postgres = PostgresFacts(
        **dict(row.items()),
        sessions=by_name,
        role_sessions=sum(s["n"] for s in sessions if s["same_role"]),
    )
    port = url.port or 5432
    if url.host and facts.postgres.server_port not in (None, port):
        facts.proxy_port = port
    if settings.pgbouncer or facts.proxy_port is not None:
        await read_bouncer(settings, facts, timeout)


async def _connect(dsn: str, timeout: float, extra: dict[str, Any]) -> asyncpg.Connection:
    return await asyncpg.connect(
        dsn, timeout=timeout, command_timeout=timeout, statement_cache_size=0, **extra
    )


async def read_bouncer(settings: PostgresSettings, facts: Facts, timeout: float) -> None:
    """``SHOW CONFIG``, ``SHOW DATABASES`` and ``SHOW POOLS`` on the admin console (the
    ``pgbouncer`` database, same address and user)."""
    try:
        import psycopg
    except ImportError:
        facts.bouncer_error = 'psycopg is not installed (pip install "blockmon[doctor]")'
        return
    url = engine_url(settings)
    source = source_for("postgres", settings)
    try:
        conn = await psycopg.AsyncConnection.connect(
            host=url.host or "",
            port=url.port or 5432,
            user=url.username or "",
            password=await source() if source is not None else url.password or "",
            dbname="pgbouncer",
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
            cursor_factory=psycopg.AsyncClientCursor,
        )
    except (psycopg.Error, CredentialError) as error:
        facts.bouncer_error = redact(str(error).strip().splitlines()[0] if str(error) else "")
        return
    try:
        config = {row[0]: str(row[1]) for row in await _show(conn, "CONFIG")}
        databases = await _show_dicts(conn, "DATABASES")
        pools = await _show_dicts(conn, "POOLS")
    finally:
        await conn.close()
    mine = next((d for d in databases if d.get("name") == url.database), {})
    servers = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
    facts.bouncer = BouncerFacts(
        pool_mode=str(mine.get("pool_mode") or config.get("pool_mode", "session")),
        default_pool_size=int(mine.get("pool_size") or config.get("default_pool_size") or 20),
        reserve_pool_size=int(config.get("reserve_pool_size", 0)),
        max_client_conn=int(config.get("max_client_conn", 100)),
        max_db_connections=int(config.get("max_db_connections", 0)),
        max_prepared_statements=int(config.get("max_prepared_statements", 0)),
        server_connections=sum(int(p.get(k) or 0) for p in pools for k in servers),
    )


async def _show(conn: Any, what: str) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cursor:
        await cursor.execute(f"SHOW {what}")
        rows: list[tuple[Any, ...]] = await cursor.fetchall()
        return rows


async def _show_dicts(conn: Any, what: str) -> list[dict[str, Any]]:
    async with conn.cursor() as cursor:
        await cursor.execute(f"SHOW {what}")
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
