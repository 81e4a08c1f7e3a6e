"""What an engine's dialect runs, seen from one place: every error its statements,
commits, rollbacks, pings and connects raise, and (when the metrics layer sets a sink)
each statement's duration.

Error observers (the connection-state log, `blockmon.postgres.engine`, and the error
metrics) used to be ``handle_error`` listeners; any DialectEvents listener makes
SQLAlchemy look up and iterate the dialect's ``do_execute`` listeners before every
statement (2 Python calls each). Instead the dialect's methods are wrapped on the
instance (`blockmon._compat.sqlalchemy.wrap_execution`) and each error is handed to the
observers as a `Failure`, which offers what they read of SQLAlchemy's
``ExceptionContext``: ``original_exception``, ``sqlalchemy_exception``,
``is_disconnect`` (decided as SQLAlchemy decides it), ``execution_context`` and
``statement``, plus the failed statement's start time. With the layout of SQLAlchemy's
internals changed, a ``handle_error`` listener feeds the same observers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.postgres.hooks import OPERATION_OPTION

STARTED = "_blockmon_t0"  # execution context attribute: a statement's start (public path)


class Failure:
    """One error of the dialect, as ``handle_error`` listeners saw it."""

    __slots__ = (
        "execution_context",
        "is_disconnect",
        "original_exception",
        "sqlalchemy_exception",
        "started",
        "statement",
    )

    def __init__(
        self,
        original: BaseException,
        wrapped: BaseException | None,
        is_disconnect: bool,
        context: Any,
        statement: str | None,
        started: float | None,
    ) -> None:
        self.original_exception = original
        self.sqlalchemy_exception = wrapped
        self.is_disconnect = is_disconnect
        self.execution_context = context
        self.statement = statement
        self.started = started


ErrorObserver = Callable[[Failure], None]


def _exits(error: BaseException) -> bool:
    """SQLAlchemy's exit exceptions (cancellation, timeouts, interrupts)."""
    return not isinstance(error, Exception) or isinstance(
        error, (asyncio.TimeoutError, asyncio.CancelledError)
    )


class DialectGuard:
    """One engine's dialect wrappers; ``sink`` (statement timing) and ``observers`` are
    read when needed, so they can change at any time."""

    __slots__ = (
        "__weakref__",
        "connect_starts",
        "dialect",
        "engine",
        "observers",
        "originals",
        "sink",
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.sink: sa_compat.Sink | None = None
        self.observers: list[ErrorObserver] = []
        self.originals: dict[str, Any] | None = None  # the dialect's own, when wrapped
        # When set, the start of each connect, by DBAPI connection, until the pool's
        # "connect" event takes it (the metrics' connection creation time).
        self.connect_starts: dict[Any, float] | None = None

    def failed(
        self,
        error: BaseException,
        dbapi_connection: Any,
        cursor: Any,
        statement: str | None,
        parameters: Any,
        context: Any,
        started: float | None,
    ) -> None:
        """An error of a wrapped method: decide ``is_disconnect`` as SQLAlchemy's
        ``Connection._handle_dbapi_exception`` does, wrap it as SQLAlchemy would, and
        tell the observers (an observer's own error is not the caller's)."""
        if not self.observers:
            return
        dialect: Any = self.dialect
        closed = False
        if context is not None:
            connection = context.root_connection
            closed = connection.closed
            if dbapi_connection is None and not connection.invalidated and not closed:
                try:
                    dbapi_connection = connection.connection  # what SQLAlchemy passes
                except Exception:
                    dbapi_connection = None
        dbapi_error = isinstance(error, dialect.loaded_dbapi.Error)
        try:
            is_disconnect = (
                dbapi_error
                and not closed
                and bool(dialect.is_disconnect(error, dbapi_connection, cursor))
            ) or (_exits(error) and not closed)
        except Exception:
            is_disconnect = False
        wrapped = None
        if dbapi_error:
            wrapped = exc.DBAPIError.instance(
                statement,
                parameters,
                error,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=is_disconnect,
                dialect=dialect,
            )
        self._tell(Failure(error, wrapped, is_disconnect, context, statement, started))

    def _tell(self, failure: Failure) -> None:
        for observer in tuple(self.observers):
            try:
                observer(failure)
            except Exception:
                continue

    def _on_handle_error(self, context: Any) -> None:
        """The public path: SQLAlchemy's own ``ExceptionContext``."""
        execution = context.execution_context
        self._tell(
            Failure(
                context.original_exception,
                context.sqlalchemy_exception,
                context.is_disconnect,
                execution,
                context.statement,
                getattr(execution, STARTED, None) if execution is not None else None,
            )
        )


_guards: WeakKeyDictionary[Engine, DialectGuard] = WeakKeyDictionary()


def guard_dialect(engine: AsyncEngine) -> DialectGuard:
    """The dialect guard of ``engine``, installed on first use (whichever side asks)."""
    sync = engine.sync_engine
    guard = _guards.get(sync)
    if guard is None:
        guard = _guards[sync] = DialectGuard(sync)
        guard.originals = sa_compat.wrap_execution(sync.dialect, guard, OPERATION_OPTION)
        if guard.originals is None:
            event.listen(sync, "handle_error", guard._on_handle_error)
    return guard


def observe_errors(engine: AsyncEngine, observer: ErrorObserver) -> None:
    guard_dialect(engine).observers.append(observer)


def unobserve_errors(engine: AsyncEngine, observer: ErrorObserver) -> None:
    """Stop telling ``observer``; with no observer and no sink left, the dialect's own
    methods come back (an unobserved engine pays nothing)."""
    guard = _guards.get(engine.sync_engine)
    if guard is None:
        return
    if observer in guard.observers:
        guard.observers.remove(observer)
    release_dialect(engine)


def release_dialect(engine: AsyncEngine) -> None:
    """Unwrap ``engine``'s dialect if nothing observes it any more."""
    sync = engine.sync_engine
    guard = _guards.get(sync)
    if guard is None or guard.observers or guard.sink is not None:
        return
    if guard.connect_starts is not None:
        return
    del _guards[sync]
    if guard.originals is not None:
        sa_compat.unwrap_execution(sync.dialect, guard.originals)
    elif event.contains(sync, "handle_error", guard._on_handle_error):
        event.remove(sync, "handle_error", guard._on_handle_error)
