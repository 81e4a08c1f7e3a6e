"""SQLAlchemy internals: the pool's ``max_overflow`` and the methods blockmon replaces on
one engine's own instances (statement timing, bounded close, following ``dispose``).

- `max_overflow`: ``QueuePool`` keeps it private. Fallback: the value the engine was
  built with (`declare_max_overflow`), None for an engine blockmon did not build.
- `wrap_execution`: ``do_execute``, ``do_executemany`` and ``do_execute_no_params``
  wrapped on the dialect instance, skipping the dialect's own first-connect queries (run
  on the one ``Connection`` made with ``_allow_autobegin=False``). Fallback: None, and
  `blockmon.metrics.dialect_timing` listens to the public cursor events instead.
- `replace_close`: ``do_close`` replaced on the dialect instance, which the pool calls
  through its ``_dialect``. Fallback: asyncpg's own close (unbounded on a dead network).
- `follow_dispose`: ``Engine.dispose`` wrapped on the instance. Fallback: the
  ``engine_disposed`` event, a ConnectionEvents listener that taxes every checkout.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Dialect, Engine, event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from blockmon._compat import Layout

EXECUTION = ("do_execute", "do_executemany", "do_execute_no_params")
_SIGNATURES = {
    "do_execute": ["self", "cursor", "statement", "parameters", "context"],
    "do_executemany": ["self", "cursor", "statement", "parameters", "context"],
    "do_execute_no_params": ["self", "cursor", "statement", "context"],
    "do_close": ["self", "dbapi_connection"],
}


def _no_connection() -> Any:
    raise AssertionError("the probe opens no connection")


def _probe() -> bool:
    pool: Any = QueuePool(_no_connection, pool_size=1, max_overflow=3)
    return (
        pool._max_overflow == 3
        and hasattr(pool, "_dialect")
        and callable(pool._close_connection)
        and all(
            list(inspect.signature(getattr(PGDialect_asyncpg, name)).parameters) == expected
            for name, expected in _SIGNATURES.items()
        )
        and "_allow_autobegin" in inspect.signature(Connection.__init__).parameters
        and inspect.isfunction(Engine.dispose)
    )


LAYOUT = Layout("sqlalchemy", _probe)
_declared: WeakKeyDictionary[Engine, int] = WeakKeyDictionary()


def declare_max_overflow(engine: AsyncEngine, value: int) -> None:
    """Remember the ``max_overflow`` ``engine`` was built with (the fallback's answer)."""
    _declared[engine.sync_engine] = value


def max_overflow(engine: Engine) -> int | None:
    """The current pool's ``max_overflow`` (-1: unbounded); None when not a QueuePool or
    unknown."""
    pool: Any = engine.pool
    if not isinstance(pool, QueuePool):
        return None
    if LAYOUT.ok():
        return int(pool._max_overflow)
    return _declared.get(engine)


class Observed(Protocol):
    """Whoever receives the timings; ``observer`` is read per statement, so it can change."""

    @property
    def observer(self) -> Callable[[str, Any, float], None]: ...


def wrap_execution(dialect: Dialect, timing: Observed, started: str) -> dict[str, Any] | None:
    """Call ``timing.observer(statement, context, elapsed)`` after each statement the
    dialect runs successfully; a failed one leaves its start time on the context as
    attribute ``started``. Returns what the instance held before (for `unwrap_execution`),
    or None (nothing wrapped) when the layout changed."""
    if not LAYOUT.ok():
        return None
    originals = {name: dialect.__dict__.get(name) for name in EXECUTION}
    dialect.do_execute = _with_parameters(dialect.do_execute, timing, started)  # type: ignore[method-assign]
    dialect.do_executemany = _with_parameters(dialect.do_executemany, timing, started)  # type: ignore[method-assign]
    dialect.do_execute_no_params = _without_parameters(  # type: ignore[method-assign]
        dialect.do_execute_no_params, timing, started
    )
    return originals


def unwrap_execution(dialect: Dialect, originals: dict[str, Any]) -> None:
    """The dialect's own methods again."""
    for name, original in originals.items():
        if original is None:
            del dialect.__dict__[name]
        else:
            setattr(dialect, name, original)


def _with_parameters(original: Any, timing: Observed, attribute: str) -> Any:
    def timed(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        if context is None or not context.root_connection._allow_autobegin:
            original(cursor, statement, parameters, context)
            return
        started = perf_counter()
        try:
            original(cursor, statement, parameters, context)
        except BaseException:
            setattr(context, attribute, started)
            raise
        timing.observer(statement, context, perf_counter() - started)

    return timed


def _without_parameters(original: Any, timing: Observed, attribute: str) -> Any:
    def timed(cursor: Any, statement: str, context: Any = None) -> None:
        if context is None or not context.root_connection._allow_autobegin:
            original(cursor, statement, context)
            return
        started = perf_counter()
        try:
            original(cursor, statement, context)
        except BaseException:
            setattr(context, attribute, started)
            raise
        timing.observer(statement, context, perf_counter() - started)

    return timed


def replace_close(engine: AsyncEngine, do_close: Callable[[Any], None]) -> bool:
    """Make the pool close DBAPI connections with ``do_close``; False (nothing replaced)
    when the layout changed."""
    sync: Any = engine.sync_engine
    if not LAYOUT.ok() or sync.pool._dialect is not sync.dialect:
        return False
    sync.dialect.do_close = do_close
    return True


def follow_dispose(engine: Engine, after: Callable[[], None]) -> Callable[[], None]:
    """Call ``after`` once each ``engine.dispose()`` has put the new pool in place;
    returns the undo."""
    if not LAYOUT.ok():

        def disposed(_: Engine) -> None:
            after()

        event.listen(engine, "engine_disposed", disposed)
        return lambda: event.remove(engine, "engine_disposed", disposed)
    original = engine.dispose

    def dispose(close: bool = True) -> None:
        original(close=close)
        after()

    engine.dispose = dispose  # type: ignore[method-assign]

    def undo() -> None:
        del engine.__dict__["dispose"]  # the class's own method again

    return undo
