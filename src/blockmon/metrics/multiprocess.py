"""Multi-process metrics: every worker's /metrics shows the sum over all workers.

prometheus_client's multiprocess mode keeps each process's metric values in files under
``PROMETHEUS_MULTIPROC_DIR``; any process's scrape reads them all (docs/deployment.md).
Custom collectors do not work there (their values stay in their process), so:

- duration histograms: `blockmon.metrics.recorder.SharedSeries` writes them through, and
  `SharedFamilies` folds their failure counters back into the ``..._total{status}``
  counters that single-process mode shows;
- live state (pool and connection gauges, cache counters): a `Mirror` copies the
  scrape-time collectors into native gauges (``livesum``) and counters every second.

A file in the directory that cannot be read (truncated, foreign, or named for a pid no
process can have) is left out of every scrape, logged once and counted
(``blockmon_metrics_files_skipped_total{reason}``): one bad file must not fail them all.
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from blockmon._compat.prometheus import live_gauge_pids, multiprocess_values
from blockmon.config.log import get_logger
from blockmon.config.settings import MonitoringSettings
from blockmon.errors import ConfigError
from blockmon.metrics.recorder import Timings

ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISH_INTERVAL = 1.0  # seconds between two copies of the live state into the files
_SETTING = "monitoring.multiprocess_dir"
_log = get_logger("blockmon.metrics")


def check_mode(settings: MonitoringSettings) -> bool:
    """Whether multi-process metrics are on; one line naming the setting when the setting,
    the environment and prometheus_client disagree (numbers would be silently wrong)."""
    directory = settings.multiprocess_dir
    given = os.environ.get(ENV)
    if given == "":
        raise ConfigError(
            f"{_SETTING}: {ENV} is set but empty (prometheus_client would write its files "
            "to the working directory): set it to a directory, or unset it"
        )
    if directory is None:
        if multiprocess_values():
            raise ConfigError(
                f"{_SETTING}: not set, but prometheus_client writes to {ENV}={given} "
                "(load the settings with load_mapping(), or set it)"
            )
        return False
    if not given or os.path.realpath(given) != os.path.realpath(directory):
        raise ConfigError(f"{_SETTING}: {ENV} must be set to {directory} before the process starts")
    if not multiprocess_values():
        raise ConfigError(
            f"{_SETTING}: prometheus_client was imported before {ENV} was set "
            "(set it before the process starts)"
        )
    return True


def forget_dead(directory: str) -> list[str]:
    """Drop the live gauges of processes that are gone: uvicorn has no hook that calls
    ``mark_process_dead`` (gunicorn's ``child_exit`` does, at once). Returns the files
    named for a pid no process can have (0, or too large for ``kill``), left in place."""
    absurd: list[str] = []
    for pid, paths in live_gauge_pids(directory).items():
        try:
            if pid <= 0:
                raise OverflowError(pid)
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, another user's
            pass
        except OverflowError:
            absurd.extend(paths)
    return absurd


_TYPES = ("counter", "gauge", "histogram", "summary")  # the files' first word
_skipped: dict[str, tuple[int, int]] = {}  # path: (size, mtime) when it was skipped
_skip_counter: Counter | None = None


def _skip(path: str, reason: str, error: BaseException | None = None) -> None:
    """Log and count ``path`` once (again only if it changes)."""
    global _skip_counter
    try:
        stat = os.stat(path)
    except OSError:
        return  # gone
    if _skipped.get(path) == (stat.st_size, stat.st_mtime_ns):
        return
    _skipped[path] = (stat.st_size, stat.st_mtime_ns)
    _log.warning(
        "metrics: skipping a file of the multi-process directory",
        file=os.path.basename(path),
        reason=reason,
        **({"error": _kind(error)} if error is not None else {}),
    )
    if _skip_counter is None:
        _skip_counter = Counter(
            "blockmon_metrics_files_skipped",
            "Files of the multi-process directory left out of scrapes (each worker counts each once)",
            ["reason"],
            registry=None,
        )
    _skip_counter.labels(reason).inc()


def _kind(error: BaseException) -> str:
    """``struct.error``, ``UnicodeDecodeError``: the type, never the message."""
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")


def _still_skipped(path: str) -> bool:
    known = _skipped.get(path)
    if known is None:
        return False
    try:
        stat = os.stat(path)
    except OSError:
        return True
    return known == (stat.st_size, stat.st_mtime_ns)


def merge_files(directory: str) -> list[Metric]:
    """Every readable file of ``directory`` merged as prometheus_client's own collector
    does; the others skipped. Each file is read on its own only when the merge of all
    fails, so a healthy directory costs one read per file."""
    absurd = forget_dead(directory)
    for path in absurd:
        _skip(path, "pid")
    files = []
    for path in glob.glob(os.path.join(glob.escape(directory), "*.db")):
        if path in absurd or _still_skipped(path):
            continue
        if os.path.basename(path).partition("_")[0] not in _TYPES:
            _skip(path, "foreign")  # not a file prometheus_client writes
            continue
        files.append(path)
    try:
        return list(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]
    except Exception:  # which file: read them one by one below
        readable = []
        for path in files:
            try:
                MultiProcessCollector.merge([path], accumulate=True)  # type: ignore[no-untyped-call]
            except FileNotFoundError:
                continue  # removed since the glob (a dead worker's)
            except Exception as error:  # struct.error, a JSON or a UTF-8 error
                _skip(path, "unreadable", error)
            else:
                readable.append(path)
        return list(MultiProcessCollector.merge(readable, accumulate=True))  # type: ignore[no-untyped-call]


class SharedFamilies(Collector):
    """The sum over every process's files, each histogram's failure counters folded into
    its ``..._total{status="success"|"error"}`` counter (names, labels and buckets as in
    single-process mode)."""

    def __init__(self, directory: str, timings: Iterable[Timings]) -> None:
        self.directory = directory
        self.timings = [t for t in timings if t.counter is not None]

    def collect(self) -> Iterator[Metric]:
        families = {m.name: m for m in merge_files(self.directory)}
        for timing in self.timings:
            histogram = families.get(timing.name)
            failed = families.pop(f"{timing.name}:failed", None)
            untimed = families.pop(f"{timing.name}:untimed", None)
            if histogram is not None:
                yield _totals(timing, histogram, failed, untimed)
        yield from families.values()


def _totals(
    timing: Timings, histogram: Metric, failed: Metric | None, untimed: Metric | None
) -> CounterMetricFamily:
    assert timing.counter is not None
    names = timing.labelnames

    def by_labels(metric: Metric | None, sample_name: str) -> dict[tuple[str, ...], float]:
        samples = metric.samples if metric is not None else []
        return {
            tuple(s.labels[n] for n in names): s.value for s in samples if s.name == sample_name
        }

    counts = by_labels(histogram, f"{timing.name}_count")
    failures = by_labels(failed, f"{timing.name}:failed_total")
    untimed_counts = by_labels(untimed, f"{timing.name}:untimed_total")
    total = CounterMetricFamily(timing.counter[0], timing.counter[1], labels=[*names, "status"])
    for labels in sorted(counts.keys() | untimed_counts.keys()):
        count = counts.get(labels, 0.0)
        errors = min(failures.get(labels, 0.0), count)
        total.add_metric([*labels, "success"], count - errors)
        total.add_metric([*labels, "error"], errors + untimed_counts.get(labels, 0.0))
    return total


def shared_registry(directory: str, timings: Iterable[Timings]) -> CollectorRegistry:
    """What /metrics exposes in multi-process mode: a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SharedFamilies(directory, timings))
    return registry


class Mirror:
    """Copies scrape-time collectors into the files: gauges as ``livesum`` gauges (a dead
    worker's share leaves the sum with it), counters as increments."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = list(collectors)
        self._gauges: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        self._published: dict[tuple[str, tuple[str, ...]], float] = {}

    def publish(self) -> None:
        for collector in self.collectors:
            for family in collector.collect():
                for sample in family.samples:
                    if family.type == "gauge":
                        self._gauge(family, sample.labels).set(sample.value)
                    elif family.type == "counter" and sample.name.endswith("_total"):
                        self._count(family, sample.name, sample.labels, sample.value)

    def _gauge(self, family: Metric, labels: dict[str, str]) -> Any:
        gauge = self._gauges.get(family.name)
        if gauge is None:
            gauge = self._gauges[family.name] = Gauge(
                family.name,
                family.documentation,
                list(labels),
                registry=None,
                multiprocess_mode="livesum",
            )
        return gauge.labels(*labels.values()) if labels else gauge

    def _count(self, family: Metric, sample: str, labels: dict[str, str], value: float) -> None:
        counter = self._counters.get(family.name)
        if counter is None:
            counter = self._counters[family.name] = Counter(
                family.name, family.documentation, list(labels), registry=None
            )
        child = counter.labels(*labels.values()) if labels else counter  # shown from 0 on
        key = (sample, tuple(labels.values()))
        delta = value - self._published.get(key, 0.0)
        if delta > 0:
            child.inc(delta)
            self._published[key] = value


async def publish_every(mirror: Mirror, interval: float = PUBLISH_INTERVAL) -> None:
    """The mirror's loop: at once, then every ``interval`` seconds until cancelled."""
    while True:
        try:
            mirror.publish()
        except Exception as error:  # nothing may stop the loop (a full disk: next time)
            _log.warning("metrics: could not copy the live state", error=repr(error))
        await asyncio.sleep(interval)
