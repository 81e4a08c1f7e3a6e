"""The one instrumentation point of an engine's pool: a checkout and a checkin, each
reading the clock once.

Four consumers share those readings: the ``bypass`` validation (HikariCP's alive
bypass: a connection back in the pool within ``postgres.validation_window`` seconds is
handed out unpinged; an older one is pinged first, and if dead it and every connection
opened before it are replaced), leak detection (``postgres.leak_detection_threshold``,
`blockmon.postgres.leaks`), and, when the metrics layer fills the `PoolGuard`'s slots,
the acquire and usage times and the count of waiting callers
(`blockmon.metrics.pool.PoolWatch`). One wrapper instead of a wrapper and three pool
event listeners: each listener cost its dispatch and a clock reading on every checkout
or checkin (`blockmon._compat.sqlalchemy.instrument_pool` does the wrapping; when
SQLAlchemy's layout changed, `_instrument_public` here, on public API only). The guard
follows the engine's ``dispose()`` onto the new pool.

While installed, the guard also gives `Statements` a checkout without a greenlet
(`blockmon.postgres.hooks.StatementHook.checkout`): SQLAlchemy's checkout is
synchronous unless it must wait, connect or ping, which the guard can tell beforehand
from the next idle connection; a greenlet per checkout costs about 7 µs of CPU.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sized
from time import perf_counter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.config.secrets import redact
from blockmon.postgres.disposal import follow_dispose
from blockmon.postgres.hooks import WaitObserver, hook_for
from blockmon.postgres.leaks import LeakDetector

# Each connection lives max_lifetime minus a random part of up to this fraction (HikariCP's
# variance), so the connections a burst opened together are not all reopened together.
LIFETIME_SPREAD = 0.025
LAST_USED = "blockmon_last_used"  # record.info: clock at the last checkin
CHECKED_OUT = "blockmon_checkout_t0"  # record.info: clock when handed out (usage starts)


class PoolGuard:
    """One engine's checkout/checkin instrumentation; each slot is None (or ``window``
    inf) when unused, and is read per checkout, so it can change at any time."""

    __slots__ = (
        "__weakref__",
        "_undo",
        "_unfollow",
        "acquire",
        "dialect",
        "engine",
        "leaks",
        "lifetime",
        "lifetime_spread",
        "on_dead",
        "usage",
        "waits",
        "window",
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.acquire: sa_compat.Histogram | None = None  # time to check a connection out
        self.usage: sa_compat.Histogram | None = None  # time a connection stays out
        self.waits: WaitObserver | None = None  # callers queued at the pool
        self.leaks: LeakDetector | None = None  # connections held too long
        self.window = math.inf  # bypass validation off
        self.on_dead: Callable[[BaseException], None] | None = None
        # the engine's pool_recycle, applied by the guard (each new pool after dispose()
        # is made with the -1 the guard left on the old one)
        self.lifetime = sa_compat.pool_recycle(engine.pool)
        self.lifetime_spread = LIFETIME_SPREAD
        self._undo: Callable[[], None] | None = None
        self._unfollow: Callable[[], None] | None = None

    def ping(self, dbapi_connection: Any) -> BaseException | None:
        """None if the connection answers; else the error the pool invalidates it with.
        A failed validation ping is no statement error (it stays out of the error
        observers of `blockmon.postgres.execution`), so ``on_dead`` hears about it."""
        try:
            # the class's own method: a failed bypass ping is no statement error (the
            # wrapper of blockmon.postgres.execution would count it)
            type(self.dialect).do_ping(self.dialect, dbapi_connection)
        except Exception as error:
            if self.on_dead is not None:
                self.on_dead(error)
            return exc.InvalidatePoolError(redact(str(error)))
        return None

    def _install(self, pool: Pool) -> None:
        """Instrument ``pool``, the engine's (or the one ``dispose()`` puts in its place).
        A pool replaced by ``dispose()`` keeps its instrumentation: connections held
        across the dispose come back through it (their usage recorded, their leak timers
        disarmed)."""
        overflow = max_overflow(self.engine)
        checkout: Callable[[], Any] | None = None
        if sa_compat.LAYOUT.ok():
            self._undo, checkout = sa_compat.instrument_pool(
                pool, self, LAST_USED, CHECKED_OUT, overflow, self.lifetime
            )
        else:
            idle = sa_compat.idle_connections(pool) if isinstance(pool, QueuePool) else (None,)
            if not isinstance(pool, QueuePool):
                overflow = None
            self._undo = _instrument_public(pool, self, LAST_USED, CHECKED_OUT, overflow, idle)
        hook_for(self.engine).checkout = checkout


def _instrument_public(
    pool: Pool,
    guard: PoolGuard,
    last_used: str,
    checked_out: str,
    max_overflow: int | None,
    idle: Sized,
) -> Callable[[], None]:
    """`blockmon._compat.sqlalchemy.instrument_pool`'s fallback, on public API only: the
    public ``connect`` wrapped, a ``checkout`` listener validating (raising
    ``InvalidatePoolError``, which makes the pool invalidate it and every older
    connection and check out again) and a ``checkin`` listener."""
    original = pool.connect
    queue: Any = pool

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
        try:
            fairy = original()
        except exc.TimeoutError:
            if watch is not None:
                watch.timed_out()
            raise
        finally:
            if waits:
                watch.waiting -= 1  # type: ignore[union-attr]
        now = perf_counter()
        fairy.info[checked_out] = now
        acquire = guard.acquire
        if acquire is not None:
            acquire.counts[bisect_left(acquire.bounds, now - started)] += 1
            acquire.sum += now - started
        leaks = guard.leaks
        if leaks is not None:
            leaks.checked_out(fairy.info, now)
        return fairy

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        info = record.info
        if last_used in info and perf_counter() - info[last_used] > guard.window:
            error = guard.ping(dbapi_connection)
            if error is not None:
                raise exc.InvalidatePoolError(str(error)) from None

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record is None:
            return
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
        watch = guard.waits
        if watch is not None and watch.exhausted and watch.waiting == 0:
            watch.freed()

    pool.connect = connect  # type: ignore[method-assign]
    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)

    def undo() -> None:
        if pool.__dict__.get("connect") is connect:  # else another library's wrapper stays
            del pool.__dict__["connect"]
        event.remove(pool, "checkout", on_checkout)
        event.remove(pool, "checkin", on_checkin)

    return undo


_guards: WeakKeyDictionary[Engine, PoolGuard] = WeakKeyDictionary()
_max_overflow: WeakKeyDictionary[Engine, int] = WeakKeyDictionary()


def declare_max_overflow(engine: AsyncEngine, value: int) -> None:
    """Remember the ``max_overflow`` ``engine`` was built with (``QueuePool`` keeps its
    own private, and reading it bought nothing measurable: docs/architecture.md)."""
    _max_overflow[engine.sync_engine] = value


def max_overflow(engine: Engine) -> int | None:
    """The ``max_overflow`` ``engine``'s QueuePool was built with (-1: unbounded); None
    when not a QueuePool or not built by blockmon (`declare_max_overflow`)."""
    return _max_overflow.get(engine) if isinstance(engine.pool, QueuePool) else None


def guard_for(engine: AsyncEngine) -> PoolGuard:
    """The guard of ``engine``'s pool, installed on first use (whichever side asks
    first) and following ``dispose()``."""
    sync = engine.sync_engine
    guard = _guards.get(sync)
    if guard is None:
        guard = _guards[sync] = PoolGuard(sync)
        guard._install(sync.pool)
        guard._unfollow = follow_dispose(sync, lambda _old, new: guard._install(new))
    return guard


def release_guard(engine: AsyncEngine) -> None:
    """Take the guard off ``engine``'s pool (and ``dispose``) if nothing uses it any more:
    no validation and empty slots."""
    sync = engine.sync_engine
    guard = _guards.get(sync)
    if guard is None or guard.window != math.inf:
        return
    if any(slot is not None for slot in (guard.waits, guard.acquire, guard.usage, guard.leaks)):
        return
    del _guards[sync]
    hook_for(sync).checkout = None
    if guard._undo is not None:
        guard._undo()
    if guard._unfollow is not None:
        guard._unfollow()


def validate_idle(
    engine: AsyncEngine, window: float, on_dead: Callable[[BaseException], None] | None = None
) -> None:
    """Ping a connection at checkout only if it sat idle longer than ``window`` seconds."""
    guard = guard_for(engine)
    guard.window = window
    guard.on_dead = on_dead


def detect_leaks(engine: AsyncEngine, threshold: float, pool: str) -> LeakDetector:
    """Report connections of ``engine`` checked out longer than ``threshold`` seconds
    (`blockmon.postgres.leaks`); ``pool`` names the pool in the reports."""
    guard = guard_for(engine)
    guard.leaks = LeakDetector(threshold, pool)
    return guard.leaks
