"""Statement timing without ConnectionEvents: wraps one engine's dialect execution methods.

Any ConnectionEvents listener (``before_cursor_execute``, ``engine_disposed``, ...) makes
every new ``Connection`` join its event dispatcher to the engine's and look up ~7 event
names per checkout, listened to or not: about 130 Python calls per ``connect()`` +
``SELECT 1`` on top of ~600. Wrapping ``do_execute``, ``do_executemany`` and
``do_execute_no_params`` on the dialect instance costs one call per statement instead.
``create_async_engine`` builds one dialect per engine, so the wrappers see exactly that
engine's statements (``_cursor_execute`` and insertmanyvalues batches included, as the
cursor events did). Like the cursor events, they skip the dialect's own first-connect
queries (version, ``SHOW ...``). The wrapping relies on SQLAlchemy's internals and lives in
`blockmon._compat.sqlalchemy`; when their layout changed, the public cursor events time
the statements instead (slower, same metrics).

A failed statement raises untouched; the wrappers hand it with its start time to the
error observers (`blockmon.postgres.execution`), which classify it with SQLAlchemy's view
of it (disconnect, wrapped class); on the public path the start time is left on the
execution context (`STARTED`) for the ``handle_error`` listener that feeds them.
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.metrics.recorder import Series
from blockmon.postgres.execution import STARTED, guard_dialect, release_dialect
from blockmon.postgres.hooks import OPERATION_OPTION


class StatementSink(Protocol):
    """Where timed statements are recorded (`blockmon.metrics.postgres.PostgresMetrics`)."""

    by_statement: dict[str, Series]  # SQL text -> its operation's series
    by_operation: dict[str, Series]  # operation name -> series
    slow: float  # the slow-query threshold in seconds (inf: off)

    def bind(self, key: str, *, named: bool) -> Series: ...

    def slow_query(self, statement: str, elapsed: float, series: Series) -> None: ...


class _Timing:
    """One engine's timing; ``sink`` is read per statement, so it can change."""

    __slots__ = ("__weakref__", "sink")

    def __init__(self, sink: StatementSink) -> None:
        self.sink = sink

    def observer(self, statement: str, context: Any, elapsed: float) -> None:
        """Record one statement: a dict lookup, one bisect, two adds (the wrappers of
        `blockmon._compat.sqlalchemy.wrap_execution` write the same out inline)."""
        sink = self.sink
        options = context.execution_options
        if OPERATION_OPTION in options:
            name = options[OPERATION_OPTION]
            table = sink.by_operation
            series = table[name] if name in table else sink.bind(name, named=True)
        else:
            table = sink.by_statement
            series = table[statement] if statement in table else sink.bind(statement, named=False)
        series.counts[bisect_left(series.bounds, elapsed)] += 1
        series.sum += elapsed
        if elapsed >= sink.slow:
            sink.slow_query(statement, elapsed, series)

    def after_cursor_execute(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        self.observer(statement, context, perf_counter() - getattr(context, STARTED))


def _before_cursor_execute(
    conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
) -> None:
    setattr(context, STARTED, perf_counter())


_timings: WeakKeyDictionary[Engine, _Timing] = WeakKeyDictionary()  # the public path's


def time_statements(engine: AsyncEngine, sink: StatementSink) -> None:
    """Record each statement ``engine`` runs successfully in ``sink`` (one sink per
    engine: the last one set wins, as for the Statements hook)."""
    guard = guard_dialect(engine)
    if guard.originals is not None:  # the dialect's wrappers time statements
        guard.sink = sink
        return
    sync = engine.sync_engine
    timing = _timings.get(sync)
    if timing is not None:
        timing.sink = sink
        return
    timing = _timings[sync] = _Timing(sink)
    event.listen(sync, "before_cursor_execute", _before_cursor_execute)
    event.listen(sync, "after_cursor_execute", timing.after_cursor_execute)


def untime_statements(engine: AsyncEngine, sink: StatementSink) -> None:
    """Undo `time_statements` if ``sink`` is still the one set: with nothing else
    observing the dialect its own methods come back, so an uninstalled engine pays
    nothing."""
    sync = engine.sync_engine
    guard = guard_dialect(engine)
    if guard.sink is sink:
        guard.sink = None
        release_dialect(engine)
    timing = _timings.get(sync)
    if timing is None or timing.sink is not sink:
        return
    del _timings[sync]
    event.remove(sync, "before_cursor_execute", _before_cursor_execute)
    event.remove(sync, "after_cursor_execute", timing.after_cursor_execute)
