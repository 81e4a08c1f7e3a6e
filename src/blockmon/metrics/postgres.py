"""Query, error and connection-lifetime metrics for an AsyncEngine.

Statements are timed by wrappers on the engine's dialect (`dialect_timing`), not by
cursor events, which would tax every connection checkout; errors come from those
wrappers too (`blockmon.postgres.execution`: no ``handle_error`` listener), connections from pool events. The hot path is one
wrapper call per statement, a dict lookup and one observation into a `Series`
(`blockmon.metrics.recorder`: a C bisect and two adds), which also yields the
``postgres_queries_total`` count. The ``operation`` label is the SQL verb,
or the name given with ``execution_options(blockmon_operation="load_rules")``; both
are capped, so label cardinality stays bounded whatever runs.
"""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.log import get_logger
from blockmon.metrics import buckets
from blockmon.metrics.dialect_timing import time_statements, untime_statements
from blockmon.metrics.pool import PoolCollector, PoolWatch, ReplicaPoolCollector
from blockmon.metrics.recorder import Series, Timings, TimingsCollector, record
from blockmon.postgres.execution import (
    Failure,
    guard_dialect,
    observe_errors,
    unobserve_errors,
)
from blockmon.postgres.hooks import OPERATION_OPTION, StatementHook, hook_for
from blockmon.postgres.leaks import LeakDetector
from blockmon.postgres.pool import guard_for

OTHER = "other"
MAX_NAMED_OPERATIONS = 100
MAX_CACHED_STATEMENTS = 4096
_VERBS = frozenset(
    [
        "select",
        "insert",
        "update",
        "delete",
        "merge",
        "with",
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "create",
        "alter",
        "drop",
        "truncate",
        "copy",
        "set",
        "show",
        "explain",
        "analyze",
        "vacuum",
        "lock",
        "grant",
        "revoke",
        "call",
        "do",
        "listen",
        "notify",
        "unlisten",
        "prepare",
        "execute",
        "deallocate",
        "discard",
        "reset",
        "refresh",
        "comment",
        "values",
        "fetch",
        "declare",
        "close",
    ]
)
_FIRST_WORD = re.compile(r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*\(?\s*([A-Za-z]+)", re.S)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")
_CONNECT_T0 = "blockmon_connect_t0"
_ERROR_TYPES = {
    "IntegrityError": "integrity",
    "ProgrammingError": "programming",
    "DataError": "data",
    "OperationalError": "operational",
    "InternalError": "internal",
    "NotSupportedError": "not_supported",
    "InterfaceError": "interface",
}
_TIMEOUTS = frozenset({"QueryCanceledError", "TimeoutError", "CancelledError"})
# SQLSTATE classes of asyncpg's errors on the fast path, onto the same error types.
_SQLSTATE_TYPES = {
    "23": "integrity",
    "42": "programming",
    "22": "data",
    "XX": "internal",
    "0A": "not_supported",
    "08": "connection",
}

_log = get_logger("blockmon.postgres.slow")


def verb(statement: str) -> str:
    """The lower-case SQL verb of ``statement``, or "other"."""
    match = _FIRST_WORD.match(statement)
    word = match.group(1).lower() if match else ""
    return word if word in _VERBS else OTHER


class PostgresMetrics:
    """Every PostgreSQL metric, registered in ``registry``; `install` hooks an engine."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        slow_query_threshold: float = 0,
        shared: bool = False,
        exemplars: bool = False,
    ) -> None:
        self.slow_query_threshold = slow_query_threshold
        self.slow = slow_query_threshold if slow_query_threshold > 0 else math.inf
        self.duration = Timings(
            "postgres_query_duration_seconds",
            "Statement duration, by operation",
            ("operation",),
            buckets.QUERY,
            counter=(
                "postgres_queries_total",
                "Statements run, by operation and status (success or error)",
            ),
            shared=shared,
            exemplars=exemplars,
        )
        self.errors = Counter(
            "postgres_errors_total", "Database errors, by type", ["type"], registry=registry
        )
        self.acquire = Timings(
            "postgres_connection_acquire_seconds",
            "Time to get a connection from the pool (including validation and opening)",
            (),
            buckets.POOL,
            shared=shared,
        )
        self.usage = Timings(
            "postgres_connection_usage_seconds",
            "Time a connection stays checked out",
            (),
            buckets.POOL,
            shared=shared,
        )
        self.creation = Histogram(
            "postgres_connection_creation_seconds",
            "Time to open a new connection",
            buckets=buckets.POOL,
            registry=registry,
        )
        self.acquire_timeouts = Counter(
            "postgres_connection_acquire_timeouts",
            "Callers that gave up waiting for a connection (pool_timeout)",
            registry=registry,
        )
        self.invalidations = Counter(
            "postgres_connection_invalidations",
            "Connections invalidated: hard (closed now) or soft (replaced at next checkout)",
            ["kind"],
            registry=registry,
        )
        self.replica_acquire = Timings(
            "postgres_replica_connection_acquire_seconds",
            "Time to get a connection from a read replica's pool",
            ("replica",),
            buckets.POOL,
            shared=shared,
        )
        self.timings = TimingsCollector(
            self.duration, self.acquire, self.usage, self.replica_acquire
        )
        registry.register(self.timings)
        self.replica_acquire_timeouts = Counter(
            "postgres_replica_connection_acquire_timeouts",
            "Callers that gave up waiting for a read replica's connection (pool_timeout)",
            ["replica"],
            registry=registry,
        )
        self.leaks = Counter(
            "postgres_connection_leaks",
            "Connections held longer than postgres.leak_detection_threshold (possible leaks)",
            registry=registry,
        )
        self.replica_leaks = Counter(
            "postgres_replica_connection_leaks",
            "A read replica's connections held longer than postgres.leak_detection_threshold",
            ["replica"],
            registry=registry,
        )
        self.families: tuple[Any, ...] = (
            self.timings,
            self.replica_acquire_timeouts,
            self.leaks,
            self.replica_leaks,
            self.errors,
            self.creation,
            self.acquire_timeouts,
            self.invalidations,
        )
        self._registry = registry
        self._usage = self.usage.series()
        self._hard = self.invalidations.labels(kind="hard")
        self._soft = self.invalidations.labels(kind="soft")
        self.by_statement: dict[str, Series] = {}
        self.by_operation: dict[str, Series] = {}
        self._error_children: dict[str, Any] = {}
        self._listeners: list[tuple[Any, str, Any]] = []
        self.watch: PoolWatch | None = None
        self._collector: PoolCollector | None = None
        self.replica_watches: dict[str, PoolWatch] = {}
        self._replica_collector: ReplicaPoolCollector | None = None
        self._statement_hooks: list[StatementHook] = []
        self._timed: list[AsyncEngine] = []
        self._observed: list[AsyncEngine] = []
        self._connect_starts: dict[Any, float] = {}
        self._leak_detectors: list[LeakDetector] = []

    def install(self, engine: AsyncEngine) -> PoolWatch:
        """Hook ``engine`` (the writer); returns the pool watch (waiters, pool state)."""
        self._listen_engine(engine)
        self.watch = PoolWatch(
            engine, self.acquire.series(), self.acquire_timeouts, self.errors, self._usage
        )
        self.watch.install()
        hook_for(engine).waits = self.watch  # callers queued at the Statements gate
        self._collector = PoolCollector(self.watch)
        self._registry.register(self._collector)
        self._count_leaks(engine, self.leaks.inc)
        return self.watch

    def install_replica(self, engine: AsyncEngine, replica: str, address: str) -> PoolWatch:
        """Hook a read replica's engine: its statements, errors and connection times count
        in the shared families; its pool in ``postgres_replica_*{replica=...}``."""
        self._listen_engine(engine)
        watch = PoolWatch(
            engine,
            self.replica_acquire.series(replica),
            self.replica_acquire_timeouts.labels(replica=replica),
            self.errors,
            self._usage,
            name=replica,
        )
        watch.install()
        hook_for(engine).waits = watch
        if self._replica_collector is None:
            self._replica_collector = ReplicaPoolCollector()
            self._registry.register(self._replica_collector)
        self._replica_collector.add(replica, address, watch)
        self.replica_watches[replica] = watch
        self._count_leaks(engine, self.replica_leaks.labels(replica=replica).inc)
        return watch

    def _count_leaks(self, engine: AsyncEngine, count: Callable[[], None]) -> None:
        """Leaks reported by ``engine``'s detection (when on) increment ``count``."""
        detector = guard_for(engine).leaks
        if detector is not None:
            detector.on_leak = count
            self._leak_detectors.append(detector)

    def pool_collectors(self) -> list[Collector]:
        """The scrape-time pool collectors (`blockmon.metrics.multiprocess.Mirror` copies them)."""
        return [c for c in (self._collector, self._replica_collector) if c is not None]

    def _listen_engine(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        time_statements(engine, self)
        self._timed.append(engine)
        observe_errors(engine, self._on_error)  # blockmon.postgres.execution
        self._observed.append(engine)
        guard = guard_dialect(engine)
        if guard.originals is not None:  # the dialect's connect is wrapped: it keeps the start
            guard.connect_starts = self._connect_starts
        else:  # a do_connect listener (a DialectEvents one: it taxes every statement)
            self._listen(sync, "do_connect", self._before_connect)
        self._listen(sync.pool, "connect", self._connected)
        self._listen(sync.pool, "invalidate", self._invalidated)
        self._listen(sync.pool, "soft_invalidate", self._soft_invalidated)
        hook = hook_for(engine)  # the Statements fast path reports here, not through events
        hook.observer = self.observe
        self._statement_hooks.append(hook)

    def uninstall(self) -> None:
        for target, name, fn in self._listeners:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        self._listeners.clear()
        for engine in self._observed:
            guard = guard_dialect(engine)
            if guard.connect_starts is self._connect_starts:
                guard.connect_starts = None
            unobserve_errors(engine, self._on_error)
        self._observed.clear()
        for engine in self._timed:
            untime_statements(engine, self)
        self._timed.clear()
        for hook in self._statement_hooks:
            if hook.observer == self.observe:
                hook.observer = None
            hook.waits = None
        self._statement_hooks.clear()
        for detector in self._leak_detectors:
            detector.on_leak = None
        self._leak_detectors.clear()
        if self.watch is not None:
            self.watch.uninstall()
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None
        for watch in self.replica_watches.values():
            watch.uninstall()
        self.replica_watches.clear()
        if self._replica_collector is not None:
            self._registry.unregister(self._replica_collector)
            self._replica_collector = None

    def _listen(self, target: Any, name: str, fn: Any) -> None:
        event.listen(target, name, fn)
        self._listeners.append((target, name, fn))

    # -- statements (hot path) ----------------------------------------------------------

    def observe(
        self, sql: str, operation: str | None, elapsed: float, error: BaseException | None
    ) -> None:
        """A statement of the fast path (`blockmon.postgres.statements`) ran: the same metrics as
        the dialect wrappers give SQLAlchemy's statements."""
        if operation is None:
            table = self.by_statement
            series = table[sql] if sql in table else self.bind(sql, named=False)
        else:
            table = self.by_operation
            series = table[operation] if operation in table else self.bind(operation, named=True)
        series.counts[bisect_left(series.bounds, elapsed)] += 1
        series.sum += elapsed
        if error is not None:
            series.failed += 1
            self._error_child(_driver_error_type(error)).inc()
        if elapsed >= self.slow:
            self.slow_query(sql, elapsed, series)

    def _error_child(self, kind: str) -> Any:
        child = self._error_children.get(kind)
        if child is None:
            child = self._error_children[kind] = self.errors.labels(type=kind)
        return child

    def _series(self, context: Any, statement: str) -> Series:
        name = context.execution_options.get(OPERATION_OPTION)
        if name is None:
            return self.by_statement.get(statement) or self.bind(statement, named=False)
        return self.by_operation.get(name) or self.bind(name, named=True)

    def bind(self, key: str, *, named: bool) -> Series:
        """Slow path: a statement or operation name seen for the first time."""
        if named:
            fits = _NAME.match(key) and len(self.by_operation) < MAX_NAMED_OPERATIONS
            operation = key if fits else OTHER
        else:
            operation = verb(key)
        series = self.by_operation.get(operation)
        if series is None:
            series = self.by_operation[operation] = self.duration.series(operation)
        if named and fits:  # a name mapped to "other" is not remembered: memory stays bounded
            self.by_operation.setdefault(key, series)
        elif len(self.by_statement) < MAX_CACHED_STATEMENTS:
            self.by_statement[key] = series
        return series

    def slow_query(self, statement: str, elapsed: float, series: Series) -> None:
        _log.warning(
            "slow query",
            operation=series.labels[0],
            duration_ms=round(elapsed * 1000, 1),
            threshold_ms=round(self.slow_query_threshold * 1000, 1),
            sql=" ".join(statement.split())[:2000],
        )

    def _on_error(self, context: Failure) -> None:
        self._error_child(_error_type(context)).inc()
        execution = context.execution_context
        if execution is not None and context.statement is not None:
            series = self._series(execution, context.statement)
            started = context.started
            if started is None:
                series.untimed += 1
            else:
                record(series, time.perf_counter() - started)
                series.failed += 1

    # -- connections ----------------------------------------------------------------

    def _before_connect(self, dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        record.info[_CONNECT_T0] = time.perf_counter()

    def _connected(self, dbapi_conn: Any, record: Any) -> None:
        started = self._connect_starts.pop(dbapi_conn, None)
        if started is None:
            started = record.info.pop(_CONNECT_T0, None)
        if started is not None:
            self.creation.observe(time.perf_counter() - started)

    def _invalidated(self, dbapi_conn: Any, record: Any, error: Any) -> None:
        self._hard.inc()

    def _soft_invalidated(self, dbapi_conn: Any, record: Any, error: Any) -> None:
        self._soft.inc()


def _error_type(context: Any) -> str:
    if context.is_disconnect:
        return "connection"
    original = context.original_exception
    cause = getattr(original, "__cause__", None)
    if (
        isinstance(original, TimeoutError)
        or {type(original).__name__, type(cause).__name__} & _TIMEOUTS
    ):
        return "timeout"
    wrapped = context.sqlalchemy_exception
    if isinstance(wrapped, exc.DBAPIError):
        for cls in type(wrapped).__mro__:
            kind = _ERROR_TYPES.get(cls.__name__)
            if kind is not None:
                return kind
    return OTHER


def _driver_error_type(error: BaseException) -> str:
    """The ``type`` label of an error raised by asyncpg on the fast path."""
    name = type(error).__name__
    if isinstance(error, TimeoutError) or name in _TIMEOUTS:
        return "timeout"
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        if state == "57014":  # query_canceled: statement_timeout
            return "timeout"
        if state.startswith("57P"):  # the server shut the connection down
            return "connection"
        return _SQLSTATE_TYPES.get(state[:2], OTHER)
    if isinstance(error, OSError) or "Connection" in name:
        return "connection"
    return {"DataError": "data", "InterfaceError": "interface"}.get(name, OTHER)
