"""The PostgreSQL pool seen from outside: current waiters, acquire time and timeouts,
an "exhausted" log once per episode, and gauges read at scrape time.

SQLAlchemy has no public count of waiters, so `PoolWatch` wraps the pool's public
``connect()`` and counts the callers that found no free connection and no room to open
one, and times each checkout (acquire) and how long the connection stays out (usage),
recorded in `blockmon.metrics.recorder` series. `Engine.dispose()` replaces the pool, so
the watch follows the new pool (`blockmon._compat.sqlalchemy.follow_dispose`: the
engine's ``dispose`` wrapped, as an ``engine_disposed`` listener would be a
ConnectionEvents listener, which taxes every connection checkout: see
`blockmon.metrics.dialect_timing`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.config.log import get_logger
from blockmon.metrics.recorder import Series

_log = get_logger("blockmon.postgres")
CHECKOUT_T0 = "blockmon_checkout_t0"  # record.info: when the connection was handed out


@dataclass(frozen=True)
class PoolState:
    used: int
    idle: int
    max: int
    min: int
    waiting: int


def _max_overflow(engine: Engine) -> int:
    """The pool's max_overflow; 0 when unknown (`blockmon._compat.sqlalchemy`)."""
    return sa_compat.max_overflow(engine) or 0


class PoolWatch:
    """Installs on an engine; `state()` is cheap and safe to call from anywhere."""

    def __init__(
        self,
        engine: AsyncEngine,
        acquire: Series | None = None,
        timeouts: Counter | None = None,
        errors: Any = None,
        usage: Series | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.engine = engine.sync_engine
        self.name = name  # a read replica's pool name (replica-0, ...); None for the writer
        self.waiting = 0
        self.exhausted = False
        self._acquire = acquire
        self._usage = usage
        self._timeouts = timeouts
        self._errors = errors  # the postgres_errors_total Counter, labelled by type
        self._wrapped: dict[int, Any] = {}
        self._unfollow: Callable[[], None] | None = None  # stops following dispose()

    def wait_started(self) -> None:
        """A caller found no free connection and waits (the pool's queue, or the
        Statements gate in front of it); the caller decrements ``waiting`` when done."""
        self.waiting += 1
        if not self.exhausted:
            self.exhausted = True
            pool: Any = self.engine.pool
            _log.warning(
                "postgres pool exhausted: callers wait for a connection",
                component="postgres",
                max=pool.size() + _max_overflow(self.engine),
                in_use=pool.checkedout(),
                waiting=self.waiting,
                **self._pool(),
            )

    def timed_out(self) -> None:
        """A waiting caller gave up after the pool timeout."""
        if self._timeouts is not None and self._errors is not None:
            self._timeouts.inc()
            self._errors.labels(type="pool_timeout").inc()

    def install(self) -> None:
        self._wrap(self.engine.pool)
        self._unfollow = sa_compat.follow_dispose(self.engine, lambda: self._wrap(self.engine.pool))
        event.listen(self.engine.pool, "checkin", self._on_checkin)

    def uninstall(self) -> None:
        if event.contains(self.engine.pool, "checkin", self._on_checkin):
            event.remove(self.engine.pool, "checkin", self._on_checkin)
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        pool = self.engine.pool
        original = self._wrapped.pop(id(pool), None)
        if original is not None:
            pool.connect = original  # type: ignore[method-assign]

    def state(self) -> PoolState:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return PoolState(0, 0, 0, 0, self.waiting)
        size = pool.size()
        return PoolState(
            used=pool.checkedout(),
            idle=pool.checkedin(),
            max=size + _max_overflow(self.engine),
            min=size,
            waiting=self.waiting,
        )

    def _on_checkin(self, dbapi_conn: Any, record: Any) -> None:
        usage = self._usage
        if usage is not None and record is not None:
            info = record.info
            if CHECKOUT_T0 in info:
                elapsed = perf_counter() - info[CHECKOUT_T0]
                del info[CHECKOUT_T0]
                usage.counts[bisect_left(usage.bounds, elapsed)] += 1
                usage.sum += elapsed
        if self.exhausted and self.waiting == 0:
            self.exhausted = False
            _log.info(
                "postgres pool has free connections again", component="postgres", **self._pool()
            )

    def _pool(self) -> dict[str, str]:
        return {} if self.name is None else {"pool": self.name}

    def _wrap(self, pool: Pool) -> None:
        if not isinstance(pool, QueuePool) or id(pool) in self._wrapped:
            return
        original = pool.connect
        self._wrapped = {id(pool): original}  # the old pool is gone
        max_overflow = sa_compat.max_overflow(self.engine)  # None: unknown, waits not seen
        idle = sa_compat.idle_connections(pool)  # read without a call while not empty
        acquire, timed = self._acquire, self._acquire is not None or self._usage is not None
        watch = self

        def connect() -> Any:
            started = perf_counter()
            waits = not idle and max_overflow is not None and pool.overflow() >= max_overflow
            if waits:
                watch.wait_started()
            try:
                connection = original()
            except exc.TimeoutError:
                watch.timed_out()
                raise
            finally:
                if waits:
                    watch.waiting -= 1
            if timed:
                now = perf_counter()
                connection.info[CHECKOUT_T0] = now  # usage starts: see _on_checkin
                if acquire is not None:
                    acquire.counts[bisect_left(acquire.bounds, now - started)] += 1
                    acquire.sum += now - started
            return connection

        pool.connect = connect  # type: ignore[method-assign]


class PoolCollector(Collector):
    """postgres_connections_{active,idle,waiting,max,min}, read when scraped."""

    def __init__(self, watch: PoolWatch) -> None:
        self.watch = watch

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families(None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(self.watch.state())

    @staticmethod
    def _families(state: PoolState | None) -> Iterator[GaugeMetricFamily]:
        specs = (
            ("postgres_connections_active", "Connections checked out of the pool", "used"),
            ("postgres_connections_idle", "Open connections idle in the pool", "idle"),
            ("postgres_connections_waiting", "Callers waiting now for a connection", "waiting"),
            ("postgres_connections_max", "Most connections the pool may open", "max"),
            ("postgres_connections_min", "Connections the pool keeps (pool_size)", "min"),
        )
        for name, doc, attr in specs:
            value = None if state is None else getattr(state, attr)
            yield GaugeMetricFamily(name, doc, value=value)


class ReplicaPoolCollector(Collector):
    """postgres_replica_connections_{active,idle,waiting,max,min}{replica, address}: the
    read replicas' pools, beside the writer's unlabelled families (which keep their
    meaning: the writer pool)."""

    def __init__(self) -> None:
        self.watches: dict[str, tuple[str, PoolWatch]] = {}  # replica -> (address, watch)

    def add(self, replica: str, address: str, watch: PoolWatch) -> None:
        self.watches[replica] = (address, watch)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families(with_values=False)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(with_values=True)

    def _families(self, *, with_values: bool) -> Iterator[GaugeMetricFamily]:
        states = {r: (a, w.state()) for r, (a, w) in self.watches.items()} if with_values else {}
        specs = (
            ("active", "Connections checked out of a read replica's pool", "used"),
            ("idle", "Open connections idle in a read replica's pool", "idle"),
            ("waiting", "Callers waiting now for a read replica's connection", "waiting"),
            ("max", "Most connections a read replica's pool may open", "max"),
            ("min", "Connections a read replica's pool keeps (pool_size)", "min"),
        )
        for suffix, doc, attr in specs:
            family = GaugeMetricFamily(
                f"postgres_replica_connections_{suffix}", doc, labels=["replica", "address"]
            )
            for replica, (address, state) in states.items():
                family.add_metric([replica, address], getattr(state, attr))
            yield family
