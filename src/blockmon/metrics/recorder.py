"""Timings recorded as plain integers on the hot path and turned into Prometheus
families only when scraped.

prometheus_client's ``Histogram.observe`` walks its buckets in a Python loop and takes
a lock per bucket; its ``Counter.inc`` costs three calls. A `Series` is preallocated
bucket counts and a sum: recording is ``series.counts[bisect_left(series.bounds, v)] +=
1; series.sum += v``, one C call and two adds, written out where the time is measured.
The success count of a ``..._total{status}`` counter is the histogram's count minus
``series.failed``, so a statement costs one observation, not three.

Recording happens on the event loop's thread (every blockmon hot path runs there);
`collect` copies the counts in one C operation, so a scrape from any thread sees a
consistent histogram. The exposition is what prometheus_client's own ``Histogram`` and
``Counter`` print for the same values (tests/monitoring/test_fast_metrics.py).

With ``exemplars=True`` (tracing on, single process) a series is an `ExemplarSeries`:
the same ``series.sum += v`` also keeps, per bucket, the trace id of the latest
observation, which the OpenMetrics exposition prints as its exemplar.

With ``shared=True`` (multi-process metrics, `blockmon.metrics.multiprocess`) a series is
a `SharedSeries`: the same inline writes also reach prometheus_client metrics kept in the
multiprocess files, which every worker's scrape sums.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString


class Series:
    """One label set: counts per bucket (the last one is +Inf), their sum, failures."""

    __slots__ = ("bounds", "counts", "created", "failed", "labels", "sum", "untimed")

    def __init__(self, bounds: tuple[float, ...], labels: tuple[str, ...]) -> None:
        self.bounds = bounds  # finite upper bounds, ascending
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.failed = 0  # observations that were failures
        self.untimed = 0  # failures without a duration (not in the histogram)
        self.labels = labels
        self.created = time.time()


class SharedSeries(Series):
    """A `Series` whose ``sum``, ``failed`` and ``untimed`` writes also go, as deltas, to
    prometheus_client metrics in the multiprocess files: ``series.sum += v`` observes
    ``v`` in the histogram, so the hot paths' inline writes stay as they are."""

    __slots__ = ("_failed", "_failures", "_histogram", "_total", "_untimed", "_untimed_counter")

    def __init__(
        self,
        bounds: tuple[float, ...],
        labels: tuple[str, ...],
        histogram: Histogram,
        failures: Counter | None,
        untimed: Counter | None,
    ) -> None:
        # Not Series.__init__: its ``self.sum = 0.0`` would be an observation.
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.labels = labels
        self.created = time.time()
        self._histogram = histogram
        self._failures = failures
        self._untimed_counter = untimed
        self._total = 0.0
        self._failed = 0
        self._untimed = 0

    @property
    def sum(self) -> float:
        return self._total

    @sum.setter
    def sum(self, value: float) -> None:
        self._histogram.observe(value - self._total)
        self._total = value

    @property
    def failed(self) -> int:
        return self._failed

    @failed.setter
    def failed(self, value: int) -> None:
        if self._failures is not None:
            self._failures.inc(value - self._failed)
        self._failed = value

    @property
    def untimed(self) -> int:
        return self._untimed

    @untimed.setter
    def untimed(self, value: int) -> None:
        if self._untimed_counter is not None:
            self._untimed_counter.inc(value - self._untimed)
        self._untimed = value


class ExemplarSeries(Series):
    """A `Series` whose ``sum`` writes also keep, for the observation's bucket, the trace
    and span ids current at that moment (an OpenMetrics exemplar): the hot paths' inline
    writes stay as they are, and cost this only when tracing is on."""

    __slots__ = ("_current_span", "_total", "exemplars")

    def __init__(
        self, bounds: tuple[float, ...], labels: tuple[str, ...], current_span: Callable[[], Any]
    ) -> None:
        super().__init__(bounds, labels)  # sets sum = 0.0 through the property: no exemplar
        self._current_span = current_span
        self.exemplars: list[Exemplar | None] = [None] * (len(bounds) + 1)

    @property
    def sum(self) -> float:
        return self._total

    @sum.setter
    def sum(self, value: float) -> None:
        observed = value - getattr(self, "_total", 0.0)
        self._total = value
        if observed <= 0:
            return
        context = self._current_span().get_span_context()
        if context.trace_id:  # 0: no span (not traced)
            ids = {"trace_id": format(context.trace_id, "032x")}
            ids["span_id"] = format(context.span_id, "016x")
            self.exemplars[bisect_left(self.bounds, observed)] = Exemplar(
                ids, observed, time.time()
            )


def record(series: Series, value: float) -> None:
    """Off the hot path: what the hot paths write out inline."""
    series.counts[bisect_left(series.bounds, value)] += 1
    series.sum += value


class Timings:
    """A histogram ``name{label...}`` of durations and, when ``counter`` is given, the
    counter ``counter{label..., status="success"|"error"}`` of the same events."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        bounds: Iterable[float],
        counter: tuple[str, str] | None = None,
        *,
        shared: bool = False,
        exemplars: bool = False,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labels
        self.bounds = tuple(float(b) for b in bounds)
        self.counter = counter
        self._le = [str(floatToGoString(b)) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, ...], Series] = {}
        self._shared = self._native(shared)
        self._current_span = _span_getter() if exemplars and not shared else None
        if not labels:
            self.series()  # an unlabelled histogram is exposed from the start

    def series(self, *values: str) -> Series:
        """The series of one label set, made on first use (slow path)."""
        found = self._series.get(values)
        if found is None:
            found = self._series[values] = self._new_series(values)
        return found

    def _native(self, shared: bool) -> tuple[Histogram, Counter | None, Counter | None] | None:
        """The multiprocess histogram and the failure counters `blockmon.metrics.multiprocess`
        folds into ``counter`` (internal names: ``<name>:failed``, ``<name>:untimed``)."""
        if not shared:
            return None
        labels = self.labelnames
        histogram = Histogram(
            self.name, self.documentation, labels, buckets=self.bounds, registry=None
        )
        if self.counter is None:
            return histogram, None, None
        failed = Counter(f"{self.name}:failed", "", labels, registry=None)
        untimed = Counter(f"{self.name}:untimed", "", labels, registry=None)
        return histogram, failed, untimed

    def _new_series(self, values: tuple[str, ...]) -> Series:
        if self._current_span is not None:
            return ExemplarSeries(self.bounds, values, self._current_span)
        if self._shared is None:
            return Series(self.bounds, values)
        histogram, failed, untimed = self._shared
        if not values:
            return SharedSeries(self.bounds, values, histogram, failed, untimed)
        return SharedSeries(
            self.bounds,
            values,
            histogram.labels(*values),
            failed.labels(*values) if failed is not None else None,
            untimed.labels(*values) if untimed is not None else None,
        )

    def families(self, created: bool, *, empty: bool = False) -> Iterator[Metric]:
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        total = (
            CounterMetricFamily(
                self.counter[0], self.counter[1], labels=[*self.labelnames, "status"]
            )
            if self.counter is not None
            else None
        )
        for series in [] if empty else list(self._series.values()):
            counts = series.counts.copy()  # one C operation: a consistent view
            cumulative = [float(c) for c in accumulate(counts)]
            labels = dict(zip(self.labelnames, series.labels, strict=True))
            buckets: list[Any] = list(zip(self._le, cumulative, strict=True))
            if isinstance(series, ExemplarSeries):
                kept = series.exemplars.copy()
                buckets = [
                    (*b, e) if e is not None else b for b, e in zip(buckets, kept, strict=True)
                ]
            histogram.add_metric(list(series.labels), buckets, series.sum)
            if created:
                histogram.samples.append(Sample(self.name + "_created", labels, series.created))
            if total is not None:
                failed = min(series.failed, int(cumulative[-1]))
                stamp = series.created if created else None
                total.add_metric([*series.labels, "success"], cumulative[-1] - failed, stamp)
                total.add_metric([*series.labels, "error"], float(failed + series.untimed), stamp)
        if total is not None:
            yield total
        yield histogram


def _span_getter() -> Callable[[], Any]:
    """OpenTelemetry's current span (the ``otel`` extra, which ``tracing.enabled`` needs)."""
    from opentelemetry import trace

    return trace.get_current_span


def created_series_enabled() -> bool:
    """Whether prometheus_client prints ``_created`` samples (its
    ``disable_created_metrics()`` or PROMETHEUS_DISABLE_CREATED_SERIES turn them off)."""
    probe = Counter("blockmon_probe", "", registry=None)
    return any(s.name.endswith("_created") for m in probe.collect() for s in m.samples)


class TimingsCollector(Collector):
    """Exposes `Timings` objects; register once per registry."""

    def __init__(self, *timings: Timings) -> None:
        self.timings = timings

    def describe(self) -> Iterator[Metric]:
        for timing in self.timings:
            yield from timing.families(False, empty=True)

    def collect(self) -> Iterator[Metric]:
        created = created_series_enabled()
        for timing in self.timings:
            yield from timing.families(created)
