"""The PostgreSQL engine: URL building, pool settings, and connection validation.

Validation follows HikariCP's alive-bypass rule: a connection used within the last
``validation_window`` seconds is handed out as is; an older one is pinged first and
replaced if dead. That keeps restarts survivable without paying a round trip on
every checkout, as ``pool_pre_ping`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

from sqlalchemy import URL, event, exc, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from blockmon.config.credentials import source_for
from blockmon.config.log import ConnectionLog, get_logger, log_sql
from blockmon.config.postgres_url import AsyncpgQuery, hosts_in_query, read_query
from blockmon.config.settings import PostgresSettings
from blockmon.errors import ConfigError
from blockmon.postgres import idle
from blockmon.postgres.closing import close_in_tasks
from blockmon.postgres.disposal import FollowedPool
from blockmon.postgres.execution import Failure, observe_errors
from blockmon.postgres.hooks import hook_for
from blockmon.postgres.pool import declare_max_overflow, detect_leaks, validate_idle
from blockmon.postgres.shutdown import close_held_connections, shut_down

_log = get_logger("blockmon.postgres")
# With ``postgres.echo`` the engine is named so that SQLAlchemy logs its statements on a
# logger of its own (documented: sqlalchemy.engine.Engine.<logging_name>).
_ECHO_NAME = "blockmon"


def engine_url(settings: PostgresSettings, *, url: str | None = None) -> URL:
    """The asyncpg URL for ``settings`` (or for ``url``, e.g. a migration DSN).

    ``postgres.hosts`` becomes a multi-host URL (``?host=A:5432&host=B:5432``) and
    ``postgres.target_session_attrs`` says which of them to settle on. A URL keeps its
    query as written (libpq's options too): `asyncpg_url` and `connect_args` read it."""
    raw = url if url is not None else (settings.url.get_secret_value() if settings.url else None)
    if raw is None:
        built = URL.create(
            "postgresql+asyncpg",
            username=settings.user,
            password=settings.password.get_secret_value() if settings.password else None,
            host=None if settings.hosts else settings.host,
            port=None if settings.hosts else settings.port,
            database=settings.database,
            query={"host": tuple(settings.hosts)} if settings.hosts else {},
        )
        return _with_session_attrs(built, settings)
    try:  # the scheme was checked with the settings
        parsed = make_url(hosts_in_query(raw))
    except (exc.ArgumentError, ValueError):
        raise ConfigError("postgres.url: not a valid URL (expected postgresql://...)") from None
    return _with_session_attrs(
        _database_out_of_query(_password_out_of_query(parsed.set(drivername="postgresql+asyncpg"))),
        settings,
    )


def _database_out_of_query(url: URL) -> URL:
    """libpq's ``?dbname=`` (or asyncpg's ``?database=``) becomes the URL's database, the
    one every command names and `blockmon.provisioning` creates (the query wins, as in libpq)."""
    for key in ("dbname", "database"):
        value = url.query.get(key)
        if value is not None:
            name = value[-1] if isinstance(value, tuple) else value
            url = url.difference_update_query([key]).set(database=name)
    return url


def _password_out_of_query(url: URL) -> URL:
    """``?password=`` becomes the URL's password (asyncpg lets the query win too), because
    SQLAlchemy masks the password in every repr but prints query values as they are."""
    value = url.query.get("password")
    if value is None:
        return url
    password = value[-1] if isinstance(value, tuple) else value
    return url.difference_update_query(["password"]).set(password=password)


def _with_session_attrs(url: URL, settings: PostgresSettings) -> URL:
    if settings.target_session_attrs is None or "target_session_attrs" in url.query:
        return url
    return url.update_query_dict({"target_session_attrs": settings.target_session_attrs})


def pgbouncer_fixes(url: URL) -> tuple[URL, dict[str, Any]]:
    """What asyncpg needs behind PgBouncer in transaction mode (SQLAlchemy's documented
    fix): no statement caches, and statement names unique across client connections, as
    consecutive transactions may run on different server connections."""
    args = {
        "statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__asyncpg_{uuid4()}__",
    }
    return url.update_query_dict({"prepared_statement_cache_size": "0"}), args


def url_options(url: URL) -> AsyncpgQuery:
    """``url``'s query read for asyncpg (checked with the settings, so never refused here)."""
    try:
        return read_query(url.query)
    except ValueError as error:
        raise ConfigError(f"postgres.url: {error}") from None


def asyncpg_url(url: URL) -> URL:
    """``url`` with only the query options asyncpg.connect() takes as keywords (the
    others are `connect_args`)."""
    return url.set(query=url_options(url).keywords)


def connect_args(settings: PostgresSettings, url: URL) -> dict[str, Any]:
    """asyncpg connect() arguments: timeouts, server settings, TLS; the URL's own
    ``sslmode``, ``connect_timeout``, ``application_name`` and ``options`` win over
    the settings, as they would for libpq."""
    options = url_options(url)
    server_settings = {"application_name": settings.application_name}
    if not settings.pgbouncer:
        # PgBouncer refuses unknown startup parameters, and a session setting would not
        # follow the client across server connections anyway: set it on the role instead.
        server_settings["statement_timeout"] = str(int(settings.statement_timeout * 1000))
    args: dict[str, Any] = {
        "timeout": options.timeout or settings.connect_timeout,
        "command_timeout": settings.command_timeout,
        "server_settings": server_settings | options.server_settings,
        "ssl": options.ssl or settings.sslmode,
    }
    source = source_for("postgres", settings)
    if source is not None:  # rotating credentials: asyncpg asks it for each new connection
        args["password"] = source
    return args


def create_engine(
    settings: PostgresSettings, *, url: str | None = None, pool: str = "primary"
) -> AsyncEngine:
    """Build (but do not connect) an AsyncEngine configured from ``settings``; ``pool``
    names its pool in leak reports (``replica-0`` for a read replica's)."""
    written = engine_url(settings, url=url)
    args = connect_args(settings, written)
    target = asyncpg_url(written)
    extra: dict[str, Any] = {}
    if settings.pgbouncer:
        target, fixes = pgbouncer_fixes(target)
        extra.update(fixes)
    engine = create_async_engine(
        target,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_recycle=settings.max_lifetime,
        # The most recently returned connection first: a warm one (FIFO rotation through
        # every pooled connection cost ~40% more client CPU, docs/performance.md), and the
        # rest stay idle, so validation pings only those a burst wakes up.
        pool_use_lifo=True,
        pool_pre_ping=settings.validation == "pre_ping",
        poolclass=FollowedPool,  # follows dispose() (blockmon.postgres.disposal)
        hide_parameters=True,
        **({"logging_name": _ECHO_NAME} if settings.echo else {}),
        connect_args={**args, **extra},
    )
    declare_max_overflow(engine, settings.max_overflow)
    if settings.echo:
        log_sql(f"sqlalchemy.engine.Engine.{_ECHO_NAME}")
    link = install_lifecycle_log(engine)
    if settings.validation == "bypass":
        install_bypass_validation(engine, settings.validation_window, on_dead=link.lost)
    close_in_tasks(engine, settings.close_timeout)
    close_held_connections(engine)
    if source_for("postgres", settings) is not None:
        retry_refused_password(engine)
    if settings.leak_detection_threshold > 0:
        detect_leaks(engine, settings.leak_detection_threshold, pool)
    return engine


PASSWORD_REFUSED = "28P01"  # SQLSTATE invalid_password


def retry_refused_password(engine: AsyncEngine) -> None:
    """A new connection refused for its password is opened once more, the password
    source asked again: a secret store and the server rotate one after the other, so a
    connection that fetched the secret just before the server changed is refused."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as error:
            if _sqlstate(error) != PASSWORD_REFUSED:
                raise
            _log.info("password refused for a new connection; asking the source again")
            return dialect.connect(*cargs, **cparams)


def _sqlstate(error: BaseException | None) -> str | None:
    while error is not None:
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str):
            return state
        error = error.__cause__ or error.__context__
    return None


def install_bypass_validation(
    engine: AsyncEngine,
    window: float,
    on_dead: Callable[[BaseException], None] | None = None,
) -> None:
    """Ping a connection at checkout only if it sat idle longer than ``window`` seconds
    (`blockmon.postgres.pool`). A failed ping never reaches ``handle_error``, so
    ``on_dead`` hears about it instead."""
    validate_idle(engine, window, on_dead)


def install_lifecycle_log(engine: AsyncEngine) -> ConnectionLog:
    state = ConnectionLog("postgres")

    @event.listens_for(engine.sync_engine.pool, "connect")
    def _connected(dbapi_conn: Any, record: Any) -> None:
        state.connected()

    def _error(failure: Failure) -> None:
        # A cancelled task drops its connection too; that is not the server going away.
        if failure.is_disconnect and not isinstance(
            failure.original_exception, asyncio.CancelledError
        ):
            state.lost(failure.original_exception)

    observe_errors(engine, _error)  # blockmon.postgres.execution: no handle_error listener
    hook_for(engine).lost = state.lost  # Statements' SQL strings bypass the dialect
    return state


async def engine_resource(settings: PostgresSettings) -> AsyncIterator[AsyncEngine]:
    """Container Resource: the engine; at shutdown, the work in flight gets up to
    ``postgres.shutdown_timeout`` seconds, then every connection is closed and the engine
    refuses new ones (`blockmon.postgres.shutdown`)."""
    engine = create_engine(settings)
    try:
        async with idle.kept(engine, settings.min_idle):  # postgres.min_idle
            yield engine
    finally:
        await shut_down(engine, settings.shutdown_timeout)
