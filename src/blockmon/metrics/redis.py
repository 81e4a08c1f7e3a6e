"""Command, error and pool metrics for a redis.asyncio client, and its connection
lifecycle log (connected / lost / reconnected, once per change).

The client's ``execute_command`` and ``pipeline`` are wrapped on the instance (not the
class), so other clients in the process are untouched: two clock reads, one dict lookup
and one observation into a `blockmon.metrics.recorder.Series` per command.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import exceptions as redis_errors
from redis.asyncio import RedisCluster
from redis.client import AbstractRedis

from blockmon._compat import redis as redis_compat
from blockmon.config.log import ConnectionLog
from blockmon.metrics import buckets
from blockmon.metrics.recorder import Series, Timings, TimingsCollector, record
from blockmon.redis.client import PoolTimeout

MAX_COMMANDS = 300
OTHER = "OTHER"


def _error_type(error: BaseException) -> str:
    if isinstance(error, PoolTimeout):
        return "pool_timeout"
    if isinstance(error, redis_errors.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, redis_errors.ConnectionError | OSError):
        return "connection"
    if isinstance(error, redis_errors.ResponseError):
        return "response"
    return "other"


class RedisMetrics:
    """Every AbstractRedis metric, registered in ``registry``; `install` hooks one client."""

    def __init__(
        self, registry: CollectorRegistry, *, shared: bool = False, exemplars: bool = False
    ) -> None:
        self.duration = Timings(
            "redis_command_duration_seconds",
            "Command duration (a pipeline counts as PIPELINE or MULTI)",
            ("command",),
            buckets.COMMAND,
            counter=(
                "redis_commands_total",
                "Commands run, by command and status (success or error)",
            ),
            shared=shared,
            exemplars=exemplars,
        )
        self.timings = TimingsCollector(self.duration)
        registry.register(self.timings)
        self.errors = Counter(
            "redis_errors_total", "AbstractRedis errors, by type", ["type"], registry=registry
        )
        self.memory = Gauge(
            "redis_memory_usage_bytes",
            "used_memory reported by INFO at the last health check",
            registry=registry,
            multiprocess_mode="livemax",  # one server, seen by each worker
        )
        self.max_memory = Gauge(
            "redis_memory_max_bytes",
            "maxmemory reported by INFO at the last health check (0: no limit)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.families: tuple[Any, ...] = (self.timings, self.errors, self.memory, self.max_memory)
        self.link = ConnectionLog("redis")
        self._registry = registry
        self._series: dict[Any, Series] = {}
        self._error_children = {
            kind: self.errors.labels(type=kind)
            for kind in ("timeout", "connection", "pool_timeout", "response", "other")
        }
        self._client: AbstractRedis | None = None
        self._saved: dict[str, Any] = {}
        self._collector: _PoolCollector | None = None

    def record_memory(self, used: int, limit: int) -> None:
        """``used_memory`` and ``maxmemory`` from the health check's INFO."""
        self.memory.set(used)
        self.max_memory.set(limit)

    def install(self, client: AbstractRedis) -> None:
        """Wrap ``execute_command`` and ``pipeline`` on this instance (Redis, sentinel or
        cluster clients all have both)."""
        self._client = client
        self._saved = {name: getattr(client, name) for name in ("execute_command", "pipeline")}
        setattr(client, "execute_command", self._wrap_execute(self._saved["execute_command"]))  # noqa: B010
        setattr(client, "pipeline", self._wrap_pipeline(self._saved["pipeline"]))  # noqa: B010
        self._collector = _PoolCollector(client)
        self._registry.register(self._collector)

    def pool_collectors(self) -> list[Collector]:
        """The scrape-time pool collector (`blockmon.metrics.multiprocess.Mirror` copies it)."""
        return [self._collector] if self._collector is not None else []

    def uninstall(self) -> None:
        if self._client is not None:
            for name, original in self._saved.items():
                setattr(self._client, name, original)
            self._client = None
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None

    def _bind(self, command: Any) -> Series:
        """Slow path: a command seen for the first time."""
        name = command.decode() if isinstance(command, bytes) else str(command)
        name = name.upper() if len(self._series) < MAX_COMMANDS and name.isascii() else OTHER
        series = self.duration.series(name)
        if len(self._series) < MAX_COMMANDS:
            self._series[command] = series
        return series

    def _failed(self, command: Any, started: float, error: BaseException) -> None:
        series = self._series.get(command) or self._bind(command)
        record(series, perf_counter() - started)
        series.failed += 1
        kind = _error_type(error)
        self._error_children[kind].inc()
        if kind in ("connection", "timeout"):  # not "pool_timeout": the pool is exhausted
            self.link.lost(error)

    def _wrap_execute(self, original: Any) -> Any:
        table, bind, link = self._series, self._bind, self.link

        async def execute_command(*args: Any, **options: Any) -> Any:
            started = perf_counter()
            try:
                result = await original(*args, **options)
            except Exception as error:
                self._failed(args[0], started, error)
                raise
            elapsed = perf_counter() - started
            command = args[0]
            series = table[command] if command in table else bind(command)
            series.counts[bisect_left(series.bounds, elapsed)] += 1
            series.sum += elapsed
            if not link.up:
                link.connected()
            return result

        return execute_command

    def _wrap_pipeline(self, original: Any) -> Any:
        metrics = self

        def pipeline(transaction: bool = True, shard_hint: Any = None) -> Any:
            pipe = original(transaction, shard_hint)
            label = "MULTI" if transaction else "PIPELINE"
            execute = pipe.execute

            async def instrumented(raise_on_error: bool = True) -> Any:
                started = perf_counter()
                try:
                    result = await execute(raise_on_error)
                except Exception as error:
                    metrics._failed(label, started, error)
                    raise
                table = metrics._series
                series = table[label] if label in table else metrics._bind(label)
                record(series, perf_counter() - started)
                if not metrics.link.up:
                    metrics.link.connected()
                return result

            pipe.execute = instrumented
            return pipe

        return pipeline


class _PoolCollector(Collector):
    """redis_connections_{active,idle}, read from the pool when scraped; for a cluster
    client, the sum over its per-node pools, and each node in
    redis_node_connections_{active,idle}{node="host:port"}."""

    def __init__(self, client: AbstractRedis) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families({})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.cluster:
            assert isinstance(self.client, RedisCluster)
            counts = {node.name: redis_compat.node_counts(node) for node in self.client.get_nodes()}
            nodes = {name: c for name, c in counts.items() if c is not None}  # None: unknown
        else:
            pool = getattr(self.client, "connection_pool", None)
            nodes = {"": redis_compat.pool_counts(pool)}
        return self._families(nodes)

    def _families(self, nodes: dict[str, tuple[int, int]]) -> Iterator[GaugeMetricFamily]:
        specs = (("active", "Connections in use"), ("idle", "Open connections idle in the pool"))
        for index, (suffix, doc) in enumerate(specs):
            total = sum(counts[index] for counts in nodes.values()) if nodes else None
            yield GaugeMetricFamily(f"redis_connections_{suffix}", doc, value=total)
            if self.cluster:
                family = GaugeMetricFamily(
                    f"redis_node_connections_{suffix}", f"{doc}, per cluster node", labels=["node"]
                )
                for name, counts in sorted(nodes.items()):
                    family.add_metric([name], counts[index])
                yield family
