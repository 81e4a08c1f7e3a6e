"""Command, error and pool metrics for a redis.asyncio client, and its connection
lifecycle log (connected / lost / reconnected, once per change).

The client's ``execute_command`` and ``pipeline`` are wrapped on the instance (not the
class), so other clients in the process are untouched: one timestamp, one dict lookup
of pre-bound children per command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import exceptions as redis_errors
from redis.asyncio import RedisCluster
from redis.client import AbstractRedis

from blockmon._compat import redis as redis_compat
from blockmon.config.log import ConnectionLog
from blockmon.metrics import buckets, fast

MAX_COMMANDS = 300
OTHER = "OTHER"


@dataclass(frozen=True)
class _Children:
    success: Callable[[float], None]
    error: Callable[[float], None]
    duration: Callable[[float], None]


def _error_type(error: BaseException) -> str:
    if isinstance(error, redis_errors.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, redis_errors.ConnectionError | OSError):
        return "connection"
    if isinstance(error, redis_errors.ResponseError):
        return "response"
    return "other"


class RedisMetrics:
    """Every AbstractRedis metric, registered in ``registry``; `install` hooks one client."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter(
            "redis_commands_total",
            "Commands run, by command and status (success or error)",
            ["command", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "redis_command_duration_seconds",
            "Command duration (a pipeline counts as PIPELINE or MULTI)",
            ["command"],
            buckets=buckets.COMMAND,
            registry=registry,
        )
        self.errors = Counter(
            "redis_errors_total", "AbstractRedis errors, by type", ["type"], registry=registry
        )
        self.memory = Gauge(
            "redis_memory_usage_bytes",
            "used_memory reported by INFO at the last health check",
            registry=registry,
        )
        self.families = (self.commands, self.duration, self.errors, self.memory)
        self.link = ConnectionLog("redis")
        self._registry = registry
        self._children: dict[Any, _Children] = {}
        self._error_children = {
            kind: self.errors.labels(type=kind)
            for kind in ("timeout", "connection", "response", "other")
        }
        self._client: AbstractRedis | None = None
        self._saved: dict[str, Any] = {}
        self._collector: _PoolCollector | None = None

    def install(self, client: AbstractRedis) -> None:
        """Wrap ``execute_command`` and ``pipeline`` on this instance (Redis, sentinel or
        cluster clients all have both)."""
        self._client = client
        self._saved = {name: getattr(client, name) for name in ("execute_command", "pipeline")}
        setattr(client, "execute_command", self._wrap_execute(self._saved["execute_command"]))  # noqa: B010
        setattr(client, "pipeline", self._wrap_pipeline(self._saved["pipeline"]))  # noqa: B010
        self._collector = _PoolCollector(client)
        self._registry.register(self._collector)

    def uninstall(self) -> None:
        if self._client is not None:
            for name, original in self._saved.items():
                setattr(self._client, name, original)
            self._client = None
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None

    def _bind(self, command: Any) -> _Children:
        """Slow path: a command seen for the first time."""
        name = command.decode() if isinstance(command, bytes) else str(command)
        name = name.upper() if len(self._children) < MAX_COMMANDS and name.isascii() else OTHER
        children = _Children(
            fast.counter(self.commands.labels(command=name, status="success")),
            fast.counter(self.commands.labels(command=name, status="error")),
            fast.histogram(self.duration.labels(command=name)),
        )
        if len(self._children) < MAX_COMMANDS:
            self._children[command] = children
        return children

    def _failed(self, children: _Children, started: float, error: BaseException) -> None:
        children.error(1)
        children.duration(time.perf_counter() - started)
        self._error_children[_error_type(error)].inc()
        if isinstance(error, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError):
            self.link.lost(error)

    def _wrap_execute(self, original: Any) -> Any:
        table, bind, link = self._children, self._bind, self.link

        async def execute_command(*args: Any, **options: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await original(*args, **options)
            except Exception as error:
                self._failed(table.get(args[0]) or bind(args[0]), started, error)
                raise
            children = table.get(args[0]) or bind(args[0])
            children.success(1)
            children.duration(time.perf_counter() - started)
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
                children = metrics._children.get(label) or metrics._bind(label)
                started = time.perf_counter()
                try:
                    result = await execute(raise_on_error)
                except Exception as error:
                    metrics._failed(children, started, error)
                    raise
                children.success(1)
                children.duration(time.perf_counter() - started)
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
