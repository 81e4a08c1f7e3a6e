"""SQLAlchemy internals: the methods blockmon replaces on one engine's own instances
(statement timing, the pool's checkout and checkin, bounded close), each kept for what
it buys over its public fallback (docs/architecture.md, ``bench/run.py --only compat``).

- `wrap_execution`: ``do_execute``, ``do_executemany`` and ``do_execute_no_params``
  wrapped on the dialect instance, recording into the metrics' series inline (the
  lookup of `blockmon.metrics.dialect_timing`, written out: a call fewer per
  statement), skipping the dialect's own first-connect queries (run
  on the one ``Connection`` made with ``_allow_autobegin=False``). Fallback: None, and
  `blockmon.metrics.dialect_timing` listens to the public cursor events instead.
- `idle_connections`: the container of a ``QueuePool``'s idle connections (the asyncio
  queue's items), whose truth a checkout reads without a call. Fallback: an object whose
  length is ``pool.checkedin()`` (four Python calls).
- `replace_close`: ``do_close`` (public) replaced on the dialect instance, which the pool
  calls through its ``_dialect``: on both paths. Fallback, when the pool holds another
  dialect object: asyncpg's own close in the caller's task.
- `instrument_pool`: the pool's ``connect`` replaced on the instance by one that runs
  ``_ConnectionFairy._checkout`` itself and reads the record's ``info`` directly, and its
  ``_return_conn`` by one that stamps the record before ``_do_return_conn``: one clock
  reading per checkout end and per checkin serves validation, acquire and usage times
  and leak detection (when on: the guard's ``leaks`` slot), with no pool event listener (a listener costs its dispatch on every checkout and
  checkin). A stale connection that fails its ping is invalidated with every older one
  (``Pool._invalidate``) and reconnected in place, as SQLAlchemy does for
  ``InvalidatePoolError``. Fallback (`blockmon.postgres.pool`): ``connect`` wrapped
  around the public method, with ``checkout`` and ``checkin`` listeners (the same
  measurements, about 7 calls more, and `Statements` check out in a greenlet).
- `invalidate_pool`, `invalidate_schema_cache`, `closes_at_return` and `in_greenlet`:
  what `Statements` needs to behave as SQLAlchemy's own path does; `may_await` and
  `await_in_greenlet`: what ``FollowedPool.dispose()`` needs to wait for its closes.

What each access buys, measured: docs/architecture.md, "What each SQLAlchemy access buys".
"""

from __future__ import annotations

import inspect
import logging
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable, Sized
from random import random
from time import perf_counter, time
from typing import Any, Protocol, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Dialect, event, exc
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.pool.base import _ConnectionFairy, _ConnectionRecord
from sqlalchemy.util import await_ as _await
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet as _in_greenlet
from sqlalchemy.util.queue import AsyncAdaptedQueue

from blockmon._compat import Layout

T = TypeVar("T")

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
        hasattr(pool, "_dialect")
        and callable(pool._close_connection)
        and all(
            list(inspect.signature(getattr(PGDialect_asyncpg, name)).parameters) == expected
            for name, expected in _SIGNATURES.items()
        )
        and "_allow_autobegin" in inspect.signature(Connection.__init__).parameters
        and list(inspect.signature(_ConnectionFairy._checkout).parameters)
        == ["pool", "threadconns", "fairy"]
        and list(inspect.signature(Pool._return_conn).parameters) == ["self", "record"]
        and list(inspect.signature(Pool._do_return_conn).parameters) == ["self", "record"]
        and list(inspect.signature(Pool._invalidate).parameters)
        == ["self", "connection", "exception", "_checkin"]
        and "_connection_record" in inspect.getsource(_ConnectionFairy.__init__)
        and pool._recycle == -1
        and _source_has(
            _ConnectionRecord.get_connection,
            "self.dbapi_connection is None",
            "self.__pool._recycle > -1",
            "self.__pool._invalidate_time > self.starttime",
            "self._soft_invalidate_time > self.starttime",
        )
        and _source_has(
            _ConnectionFairy._checkout,
            "pool._pre_ping",
            "pool.dispatch.checkout",
            # what _revalidate repeats for a connection whose validation ping failed
            "pool._invalidate(fairy, e, _checkin=False)",
            "fairy._connection_record.get_connection()",
            "_checkin_failed(",
        )
        # an idle connection is taken without awaiting (the greenlet-free checkout)
        and _source_has(AsyncAdaptedQueue.get, "return self._queue.get_nowait()")
        and callable(PGDialect_asyncpg._invalidate_schema_cache)
    )


def _source_has(function: Any, *lines: str) -> bool:
    source = inspect.getsource(function)
    return all(line in source for line in lines)


LAYOUT = Layout("sqlalchemy", _probe)


def log_as(pool_class: type[Pool], like: type[Pool]) -> None:
    """SQLAlchemy names a pool's logger after its class: make ``pool_class``'s pools log
    on ``like``'s logger (``sqlalchemy.pool...``, where applications configure it),
    not under ``blockmon.`` at the level of blockmon's own loggers. Fallback (whatever
    SQLAlchemy's layout): the subclass's own logger kept at WARNING."""
    pool_class._sqla_logger_namespace = f"{like.__module__}.{like.__name__}"  # type: ignore[attr-defined]
    logging.getLogger(f"{pool_class.__module__}.{pool_class.__name__}").setLevel(logging.WARNING)


def closes_at_return(pool: Pool, current: Pool) -> bool:
    """Whether giving a connection back to ``pool`` may await, so must run in
    SQLAlchemy's greenlet: ``pool`` is no longer the engine's ``current`` one (disposed:
    the connection is closed, `blockmon.postgres.shutdown`), another library listens to
    its ``checkin`` or ``reset`` events (a listener may await), or the connection may be
    closed instead of kept (an overflow connection coming back to a full queue; a pool
    that keeps none). ``QueuePool.dispose()`` resets the overflow count while
    connections are out, hence the disposal test first."""
    if pool is not current or not isinstance(pool, QueuePool):
        return True
    dispatch: Any = pool.dispatch
    return bool(dispatch.checkin or dispatch.reset or pool.overflow() > 0)


def invalidate_schema_cache(dialect: Dialect) -> None:
    """Make SQLAlchemy's asyncpg dialect prepare its statements again on every
    connection (what it does itself on ``InvalidCachedStatementError``). Fallback:
    nothing; SQLAlchemy finds out at its next invalid plan."""
    invalidate: Any = getattr(dialect, "_invalidate_schema_cache", None)
    if LAYOUT.ok() and invalidate is not None:
        invalidate()


def invalidate_pool(pool: Pool, fairy: Any, error: BaseException) -> None:
    """``fairy``'s connection was lost: discard it and, as SQLAlchemy does on a
    disconnect, every connection of ``pool`` opened before it (each is reopened at its
    next checkout). Fallback: ``fairy`` now, the others at their next checkout, where a
    ``checkout`` listener raises ``InvalidatePoolError`` for a connection opened before
    the loss (SQLAlchemy then invalidates every connection opened before that moment
    and reconnects this one in place)."""
    if LAYOUT.ok():
        queue: Any = pool
        queue._invalidate(fairy, error)
        return
    fairy.invalidate(error)
    lost = _lost.get(pool)
    if lost is None:
        lost = _lost[pool] = _Lost()
        event.listen(pool, "connect", lost.connected)
        event.listen(pool, "checkout", lost.checked_out)
    lost.losses += 1


_GENERATION = "blockmon_losses"  # record.info: the pool's losses when it connected


class _Lost:
    """The fallback's pool invalidation (public API only): connections are stamped at
    connect with the pool's count of lost connections; one checked out with an older
    stamp raises ``InvalidatePoolError`` (once: SQLAlchemy reconnects it, which stamps
    it again, and recycles every connection opened before)."""

    __slots__ = ("__weakref__", "losses")

    def __init__(self) -> None:
        self.losses = 0

    def connected(self, dbapi_connection: Any, record: Any) -> None:
        record.info[_GENERATION] = self.losses

    def checked_out(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get(_GENERATION, 0) < self.losses:
            raise exc.InvalidatePoolError("a connection of the pool was lost")


_lost: WeakKeyDictionary[Pool, _Lost] = WeakKeyDictionary()


async def in_greenlet(call: Callable[[], Any]) -> Any:
    """``call()`` where SQLAlchemy's sync code may await (``greenlet_spawn``)."""
    return await greenlet_spawn(call)


def may_await() -> bool:
    """Whether sync code runs inside `in_greenlet` (SQLAlchemy's greenlet)."""
    return bool(_in_greenlet())


def await_in_greenlet(awaitable: Awaitable[T]) -> T:
    """Await from sync code inside SQLAlchemy's greenlet (``may_await()``)."""
    return _await(awaitable)


class _CheckedIn:
    """The fallback of `idle_connections`: asks the pool."""

    __slots__ = ("pool",)

    def __init__(self, pool: QueuePool) -> None:
        self.pool = pool

    def __len__(self) -> int:
        return self.pool.checkedin()


def idle_connections(pool: QueuePool) -> Sized:
    """What holds ``pool``'s idle connections: empty exactly when ``pool.checkedin()`` is 0."""
    queue: Any = pool._pool
    if LAYOUT.ok() and isinstance(queue, AsyncAdaptedQueue):
        # asyncio.Queue's deque of items (a list for a LifoQueue)
        items: object = queue._queue._queue  # type: ignore[attr-defined]
        if isinstance(items, Sized):
            return items
    return _CheckedIn(pool)


class Sink(Protocol):
    """`blockmon.metrics.dialect_timing.StatementSink`."""

    by_statement: dict[str, Any]
    by_operation: dict[str, Any]
    slow: float

    def bind(self, key: str, *, named: bool) -> Any: ...

    def slow_query(self, statement: str, elapsed: float, series: Any) -> None: ...


class Timed(Protocol):
    """Whoever owns the wrappers (`blockmon.postgres.execution.DialectGuard`): ``sink``
    (None: statements not timed) is read per statement, so it can change; ``failed``
    hears every error the wrapped methods raise (what ``handle_error`` listeners saw)."""

    sink: Sink | None
    connect_starts: dict[Any, float] | None  # DBAPI connection -> when its connect began

    def failed(
        self,
        error: BaseException,
        dbapi_connection: Any,
        cursor: Any,
        statement: str | None,
        parameters: Any,
        context: Any,
        started: float | None,
    ) -> None: ...


WRAPPED = (*EXECUTION, "do_commit", "do_rollback", "do_ping", "connect")


def _default_bodies(dialect: Dialect) -> bool:
    """Whether ``dialect`` runs DefaultDialect's one-line bodies of the statement,
    commit and rollback methods (the wrappers then run those lines themselves: one
    Python call fewer per statement and per transaction end)."""
    return all(
        name not in dialect.__dict__
        and getattr(type(dialect), name) is getattr(DefaultDialect, name)
        for name in (*EXECUTION, "do_commit", "do_rollback")
    ) and all(
        line in inspect.getsource(getattr(DefaultDialect, name)) for name, line in _BODIES.items()
    )


_BODIES = {
    "do_execute": "cursor.execute(statement, parameters)",
    "do_executemany": "cursor.executemany(statement, parameters)",
    "do_execute_no_params": "cursor.execute(statement)",
    "do_commit": "dbapi_connection.commit()",
    "do_rollback": "self.skip_autocommit_rollback and self.detect_autocommit_setting(",
}


def wrap_execution(dialect: Dialect, timing: Timed, operation: str) -> dict[str, Any] | None:
    """Wrap the dialect's statement, commit, rollback, ping and connect methods on the
    instance: each error they raise goes to ``timing.failed`` (instead of a
    ``handle_error`` listener, which makes SQLAlchemy iterate the dialect's ``do_execute``
    listeners before every statement: 2 calls), and each statement run successfully is
    recorded into ``timing.sink`` when set: its series is the one of execution option
    ``operation`` when given, else the one of the SQL text
    (`blockmon.metrics.dialect_timing`). Returns, by name, what the instance held
    before and the wrapper (for `unwrap_execution`), or None (nothing wrapped) when the
    layout changed."""
    if not LAYOUT.ok():
        return None
    direct = _default_bodies(dialect)
    originals = {name: dialect.__dict__.get(name) for name in WRAPPED}
    for kind, name in enumerate(EXECUTION):
        original = getattr(dialect, name)
        setattr(dialect, name, _timed(original, timing, operation, kind if direct else -1))
    dialect.do_commit = _ended(dialect, dialect.do_commit, timing, commit=True, direct=direct)  # type: ignore[method-assign]
    dialect.do_rollback = _ended(dialect, dialect.do_rollback, timing, commit=False, direct=direct)  # type: ignore[method-assign]
    dialect.do_ping = _pinged(dialect, dialect.do_ping, timing)  # type: ignore[method-assign]
    dialect.connect = _connected(dialect, dialect.connect, timing)  # type: ignore[method-assign]
    return {name: (before, dialect.__dict__[name]) for name, before in originals.items()}


def unwrap_execution(dialect: Dialect, originals: dict[str, Any]) -> None:
    """The dialect's own methods again (a method another library wrapped over ours
    keeps its wrapper)."""
    for name, (before, ours) in originals.items():
        _restore(dialect.__dict__, name, ours, before)


def _timed(original: Any, timing: Timed, operation: str, kind: int) -> Any:
    """One wrapper for the three methods: the context is the last argument of each.
    ``kind`` 0-2: the dialect's body (DefaultDialect's one cursor call) is run here
    instead of calling the method; -1: the original is called. Recording is written out
    here, not called (one Python call per statement: this wrapper, which replaces the
    dialect's method; the rest are a C bisect and two clock reads)."""

    def timed(cursor: Any, statement: str, *rest: Any) -> None:
        context = rest[-1]
        sink = timing.sink
        if sink is None or context is None or not context.root_connection._allow_autobegin:
            try:
                original(cursor, statement, *rest)
            except BaseException as error:
                params = rest[0] if len(rest) > 1 else None
                timing.failed(error, None, cursor, statement, params, context, None)
                raise
            return
        started = perf_counter()
        try:
            if kind == 0:
                cursor.execute(statement, rest[0])
            elif kind == 2:
                cursor.execute(statement)
            elif kind == 1:
                cursor.executemany(statement, rest[0])
            else:
                original(cursor, statement, *rest)
        except BaseException as error:
            params = rest[0] if len(rest) > 1 else None
            timing.failed(error, None, cursor, statement, params, context, started)
            raise
        elapsed = perf_counter() - started
        options = context.execution_options
        if operation in options:
            name = options[operation]
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


def _ended(dialect: Any, original: Any, timing: Timed, *, commit: bool, direct: bool) -> Any:
    """``do_commit`` / ``do_rollback``: DefaultDialect's body run here when ``direct``."""

    def ended(dbapi_connection: Any) -> None:
        try:
            if not direct:
                original(dbapi_connection)
            elif commit:
                dbapi_connection.commit()
            elif not (
                dialect.skip_autocommit_rollback
                and dialect.detect_autocommit_setting(dbapi_connection)
            ):
                dbapi_connection.rollback()
        except BaseException as error:
            timing.failed(error, dbapi_connection, None, None, None, None, None)
            raise

    return ended


def _pinged(dialect: Any, original: Any, timing: Timed) -> Any:
    """``do_ping`` (``pool_pre_ping``): a DBAPI error goes to ``failed`` as SQLAlchemy
    gave it to ``handle_error``."""

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            return bool(original(dbapi_connection))
        except dialect.loaded_dbapi.Error as error:
            timing.failed(error, dbapi_connection, None, None, None, None, None)
            raise

    return do_ping


def _connected(dialect: Any, original: Any, timing: Timed) -> Any:
    """``connect``: a DBAPI error opening a connection goes to ``failed``; the start of
    each connect is kept for the creation time (instead of a ``do_connect`` listener,
    a DialectEvents listener that taxes every statement)."""

    def connect(*cargs: Any, **cparams: Any) -> Any:
        starts = timing.connect_starts
        started = perf_counter()
        try:
            connection = original(*cargs, **cparams)
        except dialect.loaded_dbapi.Error as error:
            timing.failed(error, None, None, None, None, None, None)
            raise
        if starts is not None:
            if len(starts) > 64:  # connects whose pool "connect" event never came
                starts.clear()
            starts[connection] = started
        return connection

    return connect


def replace_close(engine: AsyncEngine, do_close: Callable[[Any], None]) -> bool:
    """Make the pool close DBAPI connections with ``do_close`` (the dialect's public
    ``do_close``, replaced on the engine's own dialect object); False (nothing replaced)
    when the pool closes through another dialect object."""
    dialect: Any = engine.sync_engine.dialect
    if not _closes_through(engine.sync_engine.pool, dialect):
        return False
    dialect.do_close = do_close
    return True


def _closes_through(pool: Pool, dialect: Dialect) -> bool:
    return getattr(pool, "_dialect", None) is dialect


def _restore(attributes: dict[str, Any], name: str, ours: Any, before: Any) -> None:
    """Put back what ``attributes[name]`` held before ``ours``, if ``ours`` is still
    there (another library's wrapper installed since stays)."""
    if attributes.get(name) is not ours:
        return
    if before is None:
        del attributes[name]
    else:
        attributes[name] = before


class Histogram(Protocol):
    """A `blockmon.metrics.recorder.Series`: bucket counts and a sum, written inline."""

    counts: list[int]
    bounds: Any
    sum: float


class Waits(Protocol):
    """`blockmon.postgres.hooks.WaitObserver`."""

    waiting: int
    exhausted: bool

    def wait_started(self) -> None: ...

    def timed_out(self) -> None: ...

    def freed(self) -> None: ...


class Leaks(Protocol):
    """`blockmon.postgres.leaks.LeakDetector`: told of each checkout and checkin, with
    the record's ``info`` and the guard's clock reading."""

    def checked_out(self, info: Any, now: float) -> None: ...

    def returned(self, info: Any, now: float) -> None: ...


class Guard(Protocol):
    """`blockmon.postgres.pool.PoolGuard`: its slots are read per checkout and checkin."""

    acquire: Histogram | None
    usage: Histogram | None
    waits: Waits | None
    window: float  # seconds a connection may sit idle and be handed out unpinged (inf: off)
    lifetime_spread: float  # each connection lives lifetime x (1 - up to this fraction)

    @property
    def leaks(self) -> Leaks | None: ...

    def ping(self, dbapi_connection: Any) -> BaseException | None: ...


def pool_recycle(pool: Pool) -> float | None:
    """``pool``'s ``pool_recycle`` in seconds, None when off or unknown."""
    recycle = getattr(pool, "_recycle", -1) if LAYOUT.ok() else -1
    return float(recycle) if isinstance(recycle, (int, float)) and recycle > -1 else None


_EXPIRES = "blockmon_expires"  # record.info: clock after which it is recycled


def instrument_pool(
    pool: Pool,
    guard: Guard,
    last_used: str,
    checked_out: str,
    max_overflow: int | None,
    lifetime: float | None = None,
) -> tuple[Callable[[], None], Callable[[], Any] | None]:
    """Time checkouts (acquire) and how long connections stay out (usage) into
    ``guard``'s series, count waiting callers, stamp ``record.info[last_used]`` at each
    checkin and ping at checkout a connection idle longer than ``guard.window`` (one that
    never went back to the pool since it connected is fresh). ``max_overflow``: None
    when unknown (waits are then not seen). ``lifetime``: the engine's ``pool_recycle``
    (`pool_recycle`, read before the first install), which this checkout then applies
    from its own clock reading instead of SQLAlchemy's ``time.time()`` per checkout, each
    connection's shortened by a random part of ``guard.lifetime_spread`` (HikariCP's
    variance: connections opened together do not all reconnect together): a connection
    past its lifetime, next to be handed out or coming back, gets a start time
    before the pool's last invalidation, and SQLAlchemy's checkout closes and reopens it
    as it does a recycled one. Returns the undo, and the checkout `Statements` can make
    without a greenlet (None when the pool's queue is not asyncio's): the connection, or
    None when the next idle one would need a connect or a ping (anything that awaits).
    Only when `LAYOUT` is ok; the public fallback is `blockmon.postgres.pool`'s."""
    idle: Sized = idle_connections(pool) if isinstance(pool, QueuePool) else (None,)
    if max_overflow is not None and not isinstance(pool, QueuePool):
        max_overflow = None
    checkout: Any = _ConnectionFairy._checkout
    do_return = pool._do_return_conn
    queue: Any = pool
    # The end the queue hands out next: a list is asyncio's LifoQueue, a deque its Queue.
    nxt = -1 if isinstance(idle, list) else 0
    if lifetime is None or not isinstance(idle, (list, deque)):
        lifetime = None  # SQLAlchemy applies pool_recycle itself
    else:
        queue._recycle = -1

    def connect() -> Any:
        started = perf_counter()
        watch = guard.waits
        waits = (
            watch is not None
            and not idle
            and max_overflow is not None
            and queue.overflow() >= max_overflow
        )
        if waits:
            watch.wait_started()  # type: ignore[union-attr]
        elif lifetime is not None and idle:
            record = idle[nxt]  # type: ignore[index]
            expires = record.info.get(_EXPIRES)
            if expires is not None and started > expires:
                record.starttime = -1.0  # recycled by SQLAlchemy's checkout
        try:
            fairy = checkout(pool)
        except exc.TimeoutError:
            if watch is not None:
                watch.timed_out()
            raise
        finally:
            if waits:
                watch.waiting -= 1  # type: ignore[union-attr]
        now = perf_counter()
        info = fairy._connection_record.info
        if last_used in info and now - info[last_used] > guard.window:
            fairy = _revalidate(pool, fairy, guard)
            now = perf_counter()
            info = fairy._connection_record.info
        if lifetime is not None and _EXPIRES not in info:  # cleared at each (re)connect
            # counted from the connect, as SQLAlchemy's pool_recycle (the fallback) does
            age = time() - fairy._connection_record.starttime
            info[_EXPIRES] = now - age + lifetime * (1.0 - guard.lifetime_spread * random())
        info[checked_out] = now
        acquire = guard.acquire
        if acquire is not None:
            acquire.counts[bisect_left(acquire.bounds, now - started)] += 1
            acquire.sum += now - started
        leaks = guard.leaks
        if leaks is not None:
            leaks.checked_out(info, now)
        return fairy

    def return_conn(record: Any) -> None:
        now = perf_counter()
        info = record.info
        leaks = guard.leaks
        if leaks is not None:
            leaks.returned(info, now)
        if checked_out in info:
            usage = guard.usage
            if usage is not None:
                elapsed = now - info[checked_out]
                usage.counts[bisect_left(usage.bounds, elapsed)] += 1
                usage.sum += elapsed
            del info[checked_out]
        info[last_used] = now
        if lifetime is not None and _EXPIRES in info and now > info[_EXPIRES]:
            record.starttime = -1.0  # recycled at its next checkout
        watch = guard.waits
        if watch is not None and watch.exhausted and watch.waiting == 0:
            watch.freed()
        do_return(record)

    def connect_now() -> Any:
        # What _ConnectionRecord.get_connection and _ConnectionFairy._checkout would
        # await on: a connect (none yet, recycled, invalidated), a ping (pre_ping, this
        # guard's validation), a checkout listener; with no idle connection, the queue.
        # Another library's wrapper over this connect may await too.
        if (
            not idle
            or queue._pre_ping
            or queue.dispatch.checkout
            or attributes["connect"] is not connect
        ):
            return None
        record = idle[nxt]  # type: ignore[index]
        info = record.info
        now = perf_counter()
        if (
            record.dbapi_connection is None
            or queue._recycle > -1
            or queue._invalidate_time > record.starttime
            or record._soft_invalidate_time > record.starttime
            or (last_used in info and now - info[last_used] > guard.window)
            or (_EXPIRES in info and now > info[_EXPIRES])
        ):
            return None
        return connect()

    pool.connect = connect  # type: ignore[method-assign]
    pool._return_conn = return_conn  # type: ignore[method-assign]
    attributes = pool.__dict__

    def undo() -> None:
        _restore(pool.__dict__, "connect", connect, None)
        _restore(pool.__dict__, "_return_conn", return_conn, None)
        if lifetime is not None:
            queue._recycle = lifetime

    return undo, connect_now if isinstance(idle, (list, deque)) else None


def _revalidate(pool: Any, fairy: Any, guard: Guard) -> Any:
    """``fairy`` sat idle too long: ping it; if dead, invalidate it and every connection
    opened before it (the server went away for all of them), and reconnect it in place."""
    try:
        error = guard.ping(fairy.dbapi_connection)
    except BaseException as interrupted:  # cancelled mid-ping: never hand it out again
        fairy.invalidate(interrupted)
        raise
    if error is None:
        return fairy
    # what SQLAlchemy's checkout does when a checkout listener raises InvalidatePoolError
    # (the fallback): no second turn in the pool's queue
    record = fairy._connection_record
    record.invalidate(error)
    pool._invalidate(fairy, error, _checkin=False)
    try:
        fairy.dbapi_connection = record.get_connection()
    except BaseException as failed:
        record._checkin_failed(failed, _fairy_was_created=True)
        raise
    return fairy
