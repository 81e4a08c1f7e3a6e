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

from time import perf_counter
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

STARTED = "_blockmon_t0"
_METHODS = ("do_execute", "do_executemany", "do_execute_no_params")


class ExecuteObserver(Protocol):
    def __call__(self, statement: str, context: Any, elapsed: float) -> None: ...


class _Timing:
    """One engine's wrappers; ``observer`` is read per statement, so it can change."""

    __slots__ = ("observer", "originals")

    def __init__(self, observer: ExecuteObserver, originals: dict[str, Any]) -> None:
        self.observer = observer
        self.originals = originals  # what the dialect's instance held before


_timings: WeakKeyDictionary[Engine, _Timing] = WeakKeyDictionary()


def time_statements(engine: AsyncEngine, observer: ExecuteObserver) -> None:
    """Call ``observer`` after each statement ``engine`` runs successfully (one observer
    per engine: the last one set wins, as for the Statements hook)."""
    sync = engine.sync_engine
    timing = _timings.get(sync)
    if timing is not None:
        timing.observer = observer
        return
    dialect = sync.dialect
    timing = _timings[sync] = _Timing(observer, {n: dialect.__dict__.get(n) for n in _METHODS})
    dialect.do_execute = _with_parameters(dialect.do_execute, timing)  # type: ignore[method-assign]
    dialect.do_executemany = _with_parameters(dialect.do_executemany, timing)  # type: ignore[method-assign]
    dialect.do_execute_no_params = _without_parameters(dialect.do_execute_no_params, timing)  # type: ignore[method-assign]


def untime_statements(engine: AsyncEngine, observer: ExecuteObserver) -> None:
    """Undo `time_statements` if ``observer`` is still the one set: the dialect's own
    methods come back, so an uninstalled engine pays nothing."""
    sync = engine.sync_engine
    timing = _timings.get(sync)
    if timing is None or timing.observer != observer:
        return
    del _timings[sync]
    for name, original in timing.originals.items():
        if original is None:
            del sync.dialect.__dict__[name]
        else:
            setattr(sync.dialect, name, original)


def _with_parameters(original: Any, timing: _Timing) -> Any:
    def timed(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        if context is None or not context.root_connection._allow_autobegin:
            original(cursor, statement, parameters, context)
            return
        started = perf_counter()
        try:
            original(cursor, statement, parameters, context)
        except BaseException:
            setattr(context, STARTED, started)
            raise
        timing.observer(statement, context, perf_counter() - started)

    return timed


def _without_parameters(original: Any, timing: _Timing) -> Any:
    def timed(cursor: Any, statement: str, context: Any = None) -> None:
        if context is None or not context.root_connection._allow_autobegin:
            original(cursor, statement, context)
            return
        started = perf_counter()
        try:
            original(cursor, statement, context)
        except BaseException:
            setattr(context, STARTED, started)
            raise
        timing.observer(statement, context, perf_counter() - started)

    return timed
