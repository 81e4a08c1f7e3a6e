"""Pre-bound increments expose exactly what prometheus_client's own methods do."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from blockmon.metrics import fast


def _samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, str], float]:
    return {
        (s.name.removeprefix(prefix), s.labels.get("le", "")): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(prefix + "_") and not s.name.endswith("_created")
    }


def test_histogram_and_counter_match_prometheus_client():
    registry = CollectorRegistry()
    bounds = (0.001, 0.01, 0.1, 1.0)
    mine = Histogram("h_mine", "h", ["op"], buckets=bounds, registry=registry)
    theirs = Histogram("h_theirs", "h", ["op"], buckets=bounds, registry=registry)
    observe = fast.histogram(mine.labels(op="x"))
    for amount in (0.0, 0.0005, 0.001, 0.0010001, 0.05, 0.1, 0.99, 1.0, 3.0, 1e9):
        observe(amount)
        theirs.labels(op="x").observe(amount)
    assert _samples(registry, "h_mine") == _samples(registry, "h_theirs")
    assert _samples(registry, "h_mine")[("_count", "")] == 10

    count_mine = Counter("c_mine", "c", registry=registry)
    count_theirs = Counter("c_theirs", "c", registry=registry)
    count = fast.counter(count_mine)
    for _ in range(3):
        count(1)
        count_theirs.inc()
    assert _samples(registry, "c_mine") == _samples(registry, "c_theirs")
    assert _samples(registry, "c_mine")[("_total", "")] == 3
