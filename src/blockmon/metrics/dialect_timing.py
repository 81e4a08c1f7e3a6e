"""Statement timing without ConnectionEvents: wraps one engine's dialect execution methods.

Any ConnectionEvents listener (``before_cursor_execute``, ``engine_disposed``, ...) sets
``engine._has_events``, and from then on every new ``Connection`` joins its event
dispatcher to the engine's and looks up ~7 event names per checkout, listened to or not:
about 130 Python calls per ``connect()`` + ``SELECT 1`` on top of ~600. Wrapping
``do_execute``, ``do_executemany`` and ``do_execute_no_params`` on the dialect instance
costs one call per statement instead. ``create_async_engine`` builds one dialect per
engine, so the wrappers see exactly that engine's statements (``_cursor_execute`` and
insertmanyvalues batches included, as the cursor events did). Like the cursor events,
they skip the dialect's own first-connect queries (version, ``SHOW ...``): SQLAlchemy runs
them on the only ``Connection`` made with ``_allow_autobegin=False`` (and
``_has_events=False``), a plain attribute read where ``_has_events`` would need a lookup
in the instance's ``__dict__``.

A failed statement raises through the wrapper untouched; the wrapper only leaves its
start time on the execution context (`STARTED`) for the ``handle_error`` listener (a
DialectEvents event in SQLAlchemy 2.1, so it does not set ``engine._has_events``), which
classifies the error with SQLAlchemy's view of it (disconnect, wrapped class).
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.metrics.recorder import Series
from blockmon.postgres.hooks import OPERATION_OPTION

STARTED = "_blockmon_t0"
_METHODS = ("do_execute", "do_executemany", "do_execute_no_params")
_CONTEXT_AT = {"do_execute": 1, "do_executemany": 1, "do_execute_no_params": 0}


class StatementSink(Protocol):
    """Where timed statements are recorded (`blockmon.metrics.postgres.PostgresMetrics`)."""

    by_statement: dict[str, Series]  # SQL text -> its operation's series
    by_operation: dict[str, Series]  # operation name -> series
    slow: float  # the slow-query threshold in seconds (inf: off)

    def bind(self, key: str, *, named: bool) -> Series: ...

    def slow_query(self, statement: str, elapsed: float, series: Series) -> None: ...


class _Timing:
    """One engine's wrappers; ``sink`` is read per statement, so it can change."""

    __slots__ = ("originals", "sink")

    def __init__(self, sink: StatementSink, originals: dict[str, Any]) -> None:
        self.sink = sink
        self.originals = originals  # what the dialect's instance held before


_timings: WeakKeyDictionary[Engine, _Timing] = WeakKeyDictionary()


def time_statements(engine: AsyncEngine, sink: StatementSink) -> None:
    """Record each statement ``engine`` runs successfully in ``sink`` (one sink per
    engine: the last one set wins, as for the Statements hook)."""
    sync = engine.sync_engine
    timing = _timings.get(sync)
    if timing is not None:
        timing.sink = sink
        return
    dialect = sync.dialect
    timing = _timings[sync] = _Timing(sink, {n: dialect.__dict__.get(n) for n in _METHODS})
    for name in _METHODS:
        setattr(dialect, name, _timed(getattr(dialect, name), timing, _CONTEXT_AT[name]))


def untime_statements(engine: AsyncEngine, sink: StatementSink) -> None:
    """Undo `time_statements` if ``sink`` is still the one set: the dialect's own
    methods come back, so an uninstalled engine pays nothing."""
    sync = engine.sync_engine
    timing = _timings.get(sync)
    if timing is None or timing.sink is not sink:
        return
    del _timings[sync]
    for name, original in timing.originals.items():
        if original is None:
            del sync.dialect.__dict__[name]
        else:
            setattr(sync.dialect, name, original)


def _timed(original: Any, timing: _Timing, context_at: int) -> Any:
    """``original`` timed; the context is positional argument ``context_at`` after the
    statement, as SQLAlchemy passes it. Recording is written out here: one C call."""

    def timed(cursor: Any, statement: str, *args: Any, **kwargs: Any) -> None:
        try:
            context = args[context_at]
        except IndexError:
            context = None
        if context is None or not context.root_connection._allow_autobegin:
            original(cursor, statement, *args, **kwargs)
            return
        started = perf_counter()
        try:
            original(cursor, statement, *args, **kwargs)
        except BaseException:
            setattr(context, STARTED, started)
            raise
        elapsed = perf_counter() - started
        sink = timing.sink
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

    return timed
