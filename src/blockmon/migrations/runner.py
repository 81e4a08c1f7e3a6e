"""What Alembic's env.py runs, for the repository's ``migrations/`` and the packaged
``blockmon/migrations/`` alike.

Three ways in:
- a connection in ``config.attributes["connection"]``: `blockmon.migrations.api` (and so
  ``blockmon db``) already holds the migration lock and runs inside its event loop;
- offline (``--sql``): SQL is written out, nothing connects;
- standalone (the ``alembic`` command): settings come from config.yml and the
  environment, the engine from a blockmon container of which only logging and the
  PostgreSQL engine are started, and writers take the migration lock first.

Two kinds of env.py: an application's (``run(context)``, with or without
``target_metadata=AppMetadata``: its revisions in its own version table, autogenerate
blind to blockmon's tables) and blockmon's own, for the opt-in alerting tables
(``run_blockmon(context)``: version table ``blockmon_alembic_version``), so both chains
live in one database.

Logging is blockmon's: ``fileConfig`` is never called, so the application's loggers
stay enabled; only the standalone ``alembic`` command's root logger is taken over.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from alembic.util import CommandError
from sqlalchemy import Connection, MetaData
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from blockmon.config.log import configure_logging, get_logger
from blockmon.config.secrets import redact
from blockmon.config.settings import MigrationSettings, Settings, validate
from blockmon.errors import BlockmonError, RevisionFailed
from blockmon.migrations.api import (
    COMMAND_KEY,
    CONNECTION_KEY,
    METADATA_KEY,
    MODELS_KEY,
    SETTINGS_KEY,
    alembic_config,
    migration_mapping,
)
from blockmon.migrations.checksums import checksum_table, recorder
from blockmon.migrations.lock import advisory_lock
from blockmon.migrations.version_tables import BLOCKMON_VERSION_TABLE, version_table
from blockmon.postgres.engine import create_engine

_READ_ONLY_COMMANDS = frozenset({"current", "check", "heads", "history", "show", "branches"})
_log = get_logger("blockmon.migrate")
_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of lock_timeout (and NOWAIT)
_CHECK_CLIENT = "1s"  # client_connection_check_interval during migrations (PostgreSQL 14+)


@dataclass(frozen=True)
class _Env:
    """Which chain an env.py runs: an application's, or blockmon's alerting tables."""

    metadata: MetaData | None = None
    include_blockmon: bool = False
    is_blockmon: bool = False


def run(
    context: Any, *, target_metadata: MetaData | None = None, include_blockmon: bool = False
) -> None:
    """The body of an application's env.py; ``context`` is ``alembic.context``.

    ``target_metadata``: the application's models, for autogenerate and ``check`` (none
    for an application written in SQL). ``include_blockmon=True``: its ``alembic upgrade``
    first brings blockmon's alerting tables to head as well.
    """
    _dispatch(context, _Env(target_metadata, include_blockmon))


def run_blockmon(context: Any) -> None:
    """The body of blockmon's own env.py: the alerting tables' chain."""
    _dispatch(context, _Env(is_blockmon=True))


def _dispatch(context: Any, env: _Env) -> None:
    if context.is_offline_mode():
        _run_offline(context, env)
        return
    connection = context.config.attributes.get(CONNECTION_KEY)
    if connection is not None:
        settings = context.config.attributes.get(SETTINGS_KEY) or MigrationSettings()
        run_on_connection(context, connection, settings, env)
        return
    try:
        _run_standalone(context, env)
    except BlockmonError as error:
        raise CommandError(str(error)) from None


def run_on_connection(
    context: Any, connection: Connection, settings: MigrationSettings, env: _Env = _Env()
) -> None:
    """Run the command on ``connection``: one transaction per revision, DDL under
    ``lock_timeout``; a failure names the revision and its cause."""
    if env.include_blockmon and _command(context) == "upgrade":
        _upgrade_blockmon_first(context, connection, settings)
    _set_lock_timeout(connection, settings)
    tracker = _StepTracker()
    options = _options(context, env)
    try:
        context.configure(connection=connection, **options)
        planned = context.get_context().opts.get("fn")
        if planned is not None:
            context.configure(
                connection=connection,
                fn=tracker.wrap(planned),
                on_version_apply=(tracker.applied, recorder(options["version_table"])),
                **options,
            )
        _run_retrying(context, connection, settings, tracker)
    except DBAPIError as error:
        raise RevisionFailed(tracker.describe_failure(error)) from None
    finally:
        _reset_lock_timeout(connection)


def _run_retrying(
    context: Any, connection: Connection, settings: MigrationSettings, tracker: _StepTracker
) -> None:
    """Run the revisions; one that hit lock_timeout was rolled back whole, so it runs
    again after a pause (doubling) up to ``migrations.lock_retries`` times."""
    for retry in itertools.count(1):
        try:
            with context.begin_transaction():
                context.run_migrations()
            return
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            if retry > settings.lock_retries:
                tracker.retries = settings.lock_retries
                raise
            wait = settings.lock_retry_backoff * 2 ** (retry - 1)
            _log.warning(
                "lock_timeout: revision rolled back, retrying",
                revision=tracker.running(),
                retry=retry,
                retries=settings.lock_retries,
                wait=wait,
            )
            if connection.in_transaction():
                connection.rollback()
            # a pause that lets the event loop run (the application keeps serving)
            connection.connection.dbapi_connection.run_async(  # type: ignore[union-attr]
                lambda _driver, wait=wait: asyncio.sleep(wait)
            )


def _options(context: Any, env: _Env) -> dict[str, Any]:
    from blockmon.migrations import tables as schema

    metadata: MetaData | None
    if env.is_blockmon:
        metadata = context.config.attributes.get(METADATA_KEY, schema.metadata)
        table, include = BLOCKMON_VERSION_TABLE, _only_known_tables(metadata)
    else:
        metadata = context.config.attributes.get(METADATA_KEY, env.metadata)
        table = version_table(context.config)
        include = _not_blockmons(metadata or MetaData(), schema.metadata, checksum_table(table))
    return {
        "target_metadata": metadata,
        "version_table": table,
        "transaction_per_migration": True,
        "compare_type": True,
        "compare_server_default": True,
        "include_name": include,
    }


def _only_known_tables(metadata: MetaData) -> Callable[[str | None, str, Any], bool]:
    """Compare blockmon's tables only: an application's own tables in the same
    database are not drift."""

    def include(name: str | None, kind: str, parent: Any) -> bool:
        return kind != "table" or name in metadata.tables

    return include


def _not_blockmons(
    app: MetaData, blockmon: MetaData, checksums: str
) -> Callable[[str | None, str, Any], bool]:
    """In an application's env: every table but blockmon's (unless the application's
    models declare them), blockmon's version table and the checksum tables (``checksums``,
    the application chain's: bookkeeping, like its version table)."""
    bookkeeping = {BLOCKMON_VERSION_TABLE, checksum_table(BLOCKMON_VERSION_TABLE), checksums}
    hidden = (set(blockmon.tables) | bookkeeping) - set(app.tables)

    def include(name: str | None, kind: str, parent: Any) -> bool:
        return kind != "table" or name not in hidden

    return include


def _command(context: Any) -> str | None:
    """The Alembic command running (``upgrade``, ``check``, ...), whoever started it."""
    named = context.config.attributes.get(COMMAND_KEY)
    if named is not None:
        return str(named)
    cmd = getattr(context.config.cmd_opts, "cmd", None)
    return getattr(cmd[0], "__name__", None) if cmd else None


def _upgrade_blockmon_first(
    context: Any, connection: Connection, settings: MigrationSettings
) -> None:
    """``include_blockmon=True``: blockmon's chain to head on the same connection."""
    from alembic import command

    cfg = alembic_config()
    cfg.attributes.update({CONNECTION_KEY: connection, SETTINGS_KEY: settings})
    with _outer_environment(context):
        command.upgrade(cfg, "head")


@contextmanager
def _outer_environment(context: Any) -> Iterator[None]:
    """Alembic keeps the running env in module globals (``alembic.context._proxy``) and
    a nested command removes it on exit; put the outer one back. (Alembic internals,
    used here only.)"""
    outer = getattr(context, "_proxy", None)
    try:
        yield
    finally:
        if outer is not None:
            outer._install_proxy()


def _set_lock_timeout(connection: Connection, settings: MigrationSettings) -> None:
    # Committed at once: a transaction left open here would make Alembic treat it as
    # external and roll every revision back with it.
    connection.exec_driver_sql(f"SET lock_timeout = '{round(settings.lock_timeout * 1000)}ms'")
    # the migrations' own: an index build outlives the application's postgres.statement_timeout
    connection.exec_driver_sql(
        f"SET statement_timeout = '{round(settings.statement_timeout * 1000)}ms'"
    )
    if (connection.dialect.server_version_info or (0,)) >= (14,):
        # If this process dies mid-revision, the server notices within a second even
        # while a statement runs, and rolls the revision back; otherwise the session
        # keeps its locks until the statement ends, and a rerun fails on them.
        connection.exec_driver_sql(f"SET client_connection_check_interval = '{_CHECK_CLIENT}'")
    connection.commit()


def _reset_lock_timeout(connection: Connection) -> None:
    if connection.invalidated or connection.closed:
        return
    try:
        connection.rollback()
        connection.exec_driver_sql("RESET lock_timeout")
        connection.exec_driver_sql("RESET statement_timeout")
        if (connection.dialect.server_version_info or (0,)) >= (14,):
            connection.exec_driver_sql("RESET client_connection_check_interval")
        connection.commit()
    except DBAPIError as error:
        _log.warning("lock_timeout not reset", error=type(error).__name__)
        connection.invalidate()


class _StepTracker:
    """Knows which revision was running when one failed, and where the database stays."""

    def __init__(self) -> None:
        self.steps: list[Any] = []
        self.done = 0
        self.heads: tuple[str, ...] = ()
        self.retries = 0  # lock_timeout retries made before giving up

    def wrap(self, planned: Callable[..., Iterable[Any]]) -> Callable[..., list[Any]]:
        def steps(heads: Any, context: Any) -> list[Any]:
            self.heads = tuple(heads)
            self.steps = list(planned(heads, context))
            self.done = 0
            return self.steps

        return steps

    def applied(self, *, heads: Iterable[str], **_: Any) -> None:
        self.done += 1
        self.heads = tuple(heads)

    def running(self) -> str:
        """The revision that runs (or ran last) when a step fails."""
        if self.done >= len(self.steps):
            return "?"
        script = getattr(self.steps[self.done], "revision", None)
        return str(getattr(script, "revision", None) or self.steps[self.done])

    def describe_failure(self, error: DBAPIError) -> str:
        orig = error.orig if error.orig is not None else error
        cause = f"{type(orig).__name__}: {redact(' '.join(str(orig).split()))}"
        if self.retries:
            cause += f" (after {self.retries} retries, migrations.lock_retries)"
        stays = ",".join(sorted(self.heads)) or "base"
        if self.done >= len(self.steps):
            return f"migration failed (the database stays at {stays}): {cause}"
        script = getattr(self.steps[self.done], "revision", None)
        name = getattr(script, "revision", None) or str(self.steps[self.done])
        doc = getattr(script, "doc", None)
        label = f"revision {name}" + (f" ({doc})" if doc else "")
        return f"{label} failed and was rolled back (the database stays at {stays}): {cause}"


def _run_offline(context: Any, env: _Env) -> None:
    # ``blockmon db --sql`` passes the settings it loaded (from its own ``-c FILE``).
    settings = context.config.attributes.get(SETTINGS_KEY) or _load_settings(context).migrations
    options = _options(context, env)
    # the application's models, for the lint (a drop of a column they still have)
    context.config.attributes[MODELS_KEY] = options["target_metadata"]
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        **{k: v for k, v in options.items() if k != "include_name"},
    )
    with context.begin_transaction():
        context.execute(f"SET lock_timeout = '{round(settings.lock_timeout * 1000)}ms'")
        context.run_migrations()


def _run_standalone(context: Any, env: _Env) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise BlockmonError(
            "alembic was called inside a running event loop: "
            "use `await blockmon.migrations.api.upgrade(container)` there"
        )
    settings = _load_settings(context)
    asyncio.run(_standalone(context, settings, env))


async def _standalone(context: Any, settings: Settings, env: _Env) -> None:
    """Logging (the process is Alembic's: blockmon takes over its root logger) and the
    engine on the migration DSN (if any), nothing else of blockmon."""
    full = validate(Settings, migration_mapping(settings))
    configure_logging(full.log.model_copy(update={"configure_root": True}))
    engine = create_engine(full.postgres)
    try:
        lock: AbstractAsyncContextManager[Any] = (
            advisory_lock(engine, settings.migrations.lock_wait)
            if _writes(context)
            else nullcontext()
        )
        async with lock, engine.connect() as conn:
            await conn.run_sync(
                lambda sync_conn: run_on_connection(context, sync_conn, settings.migrations, env)
            )
    except (OSError, TimeoutError, SQLAlchemyError) as error:  # not a revision's: reaching it
        from blockmon.config.failures import connection_failure
        from blockmon.provisioning.servers import postgres_address

        timeout = ("postgres.connect_timeout", full.postgres.connect_timeout)
        where = postgres_address(full.postgres)
        raise BlockmonError(
            f"database: {connection_failure(error, address=where, timeout=timeout)}"
        ) from None
    finally:
        await engine.dispose()


def _load_settings(context: Any) -> Settings:
    from blockmon.config.file import load_mapping

    path = context.get_x_argument(as_dictionary=True).get("config")
    return validate(Settings, load_mapping(path))


def _writes(context: Any) -> bool:
    """Whether the alembic command may change the schema (and so needs the lock)."""
    return _command(context) not in _READ_ONLY_COMMANDS
