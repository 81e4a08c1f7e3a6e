"""The PostgreSQL pool seen from outside: current waiters, acquire time and timeouts,
an "exhausted" log once per episode, and gauges read at scrape time.

SQLAlchemy has no public count of waiters, so `PoolWatch` fills the slots of the
engine's `blockmon.postgres.pool.PoolGuard` (the pool's one checkout/checkin
instrumentation point, which also follows ``dispose()``): the guard counts the callers
that found no free connection and no room to open one, and times each checkout (acquire)
and how long the connection stays out (usage) into `blockmon.metrics.recorder` series.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from blockmon.config.log import get_logger
from blockmon.metrics.recorder import Series
from blockmon.postgres.pool import guard_for, max_overflow, release_guard

_log = get_logger("blockmon.postgres")


@dataclass(frozen=True)
class PoolState:
    used: int
    idle: int
    max: int
    min: int
    waiting: int


def _max_overflow(engine: Engine) -> int:
    """The pool's max_overflow; 0 when unknown (`blockmon._compat.sqlalchemy`)."""
    return max_overflow(engine) or 0


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
        self.async_engine = engine
        self.engine = engine.sync_engine
        self.name = name  # a read replica's pool name (replica-0, ...); None for the writer
        self.waiting = 0
        self.exhausted = False
        self._acquire = acquire
        self._usage = usage
        self._timeouts = timeouts
        self._errors = errors  # the postgres_errors_total Counter, labelled by type

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
        guard = guard_for(self.async_engine)
        guard.acquire = self._acquire
        guard.usage = self._usage
        guard.waits = self

    def uninstall(self) -> None:
        guard = guard_for(self.async_engine)
        if guard.waits is self:
            guard.acquire = guard.usage = guard.waits = None
            release_guard(self.async_engine)  # unless validation still uses it

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

    def freed(self) -> None:
        """A connection came back and nobody waits any more."""
        self.exhausted = False
        _log.info("postgres pool has free connections again", component="postgres", **self._pool())

    def _pool(self) -> dict[str, str]:
        return {} if self.name is None else {"pool": self.name}


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
