"""Recorded timings expose exactly what prometheus_client's own Histogram and Counter
print for the same values: same names, labels, buckets, values and sample order."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
)

from blockmon.metrics.recorder import Timings, TimingsCollector, record

BOUNDS = (0.001, 0.0025, 0.01, 0.1, 1.0)
VALUES = (0.0, 0.0005, 0.001, 0.0010001, 0.0025, 0.05, 0.1, 0.99, 1.0, 3.0, 1e9)


def _without_created_values(text: bytes) -> list[str]:
    """The exposition, with the value of each ``_created`` sample blanked (a creation
    time differs between two objects made one after the other)."""
    return [
        line.rsplit(" ", 1)[0] if "_created{" in line or "_created " in line else line
        for line in text.decode().splitlines()
    ]


def _theirs(values: dict[tuple[str, bool], list[float]], labelled: bool) -> CollectorRegistry:
    registry = CollectorRegistry()  # the counter first, as blockmon registers it
    labels = ["operation"] if labelled else []
    counter = (
        Counter("t_total", "Events", [*labels, "status"], registry=registry) if labelled else None
    )
    histogram = Histogram("t_seconds", "Durations", labels, buckets=BOUNDS, registry=registry)
    for (operation, failed), amounts in values.items():
        child = histogram.labels(operation=operation) if labelled else histogram
        if counter is not None:
            counter.labels(operation=operation, status="success")
            counter.labels(operation=operation, status="error")
        for amount in amounts:
            child.observe(amount)
            if counter is not None:
                counter.labels(operation=operation, status="error" if failed else "success").inc()
    return registry


def _mine(values: dict[tuple[str, bool], list[float]], labelled: bool) -> CollectorRegistry:
    registry = CollectorRegistry()
    timings = Timings(
        "t_seconds",
        "Durations",
        ("operation",) if labelled else (),
        BOUNDS,
        counter=("t_total", "Events") if labelled else None,
    )
    registry.register(TimingsCollector(timings))
    for (operation, failed), amounts in values.items():
        series = timings.series(operation) if labelled else timings.series()
        for amount in amounts:
            record(series, amount)
            series.failed += failed
    return registry


@pytest.mark.parametrize("created", [True, False])
def test_labelled_histogram_and_counter_match_prometheus_client(created: bool) -> None:
    values = {
        ("select", False): list(VALUES),
        ("select", True): [0.002, 5.0],
        ("insert", False): [0.03],
    }
    if not created:
        disable_created_metrics()
    try:
        theirs = generate_latest(_theirs(values, labelled=True))
        mine = generate_latest(_mine(values, labelled=True))
    finally:
        enable_created_metrics()
    assert _without_created_values(mine) == _without_created_values(theirs)
    assert (b"_created" in mine) is created
    assert b't_total{operation="select",status="error"} 2.0' in mine
    assert b't_seconds_count{operation="select"} 13.0' in mine


def test_unlabelled_histogram_matches_prometheus_client_before_and_after_values() -> None:
    assert _without_created_values(generate_latest(_mine({}, labelled=False))) == (
        _without_created_values(generate_latest(_theirs({}, labelled=False)))
    )
    values = {("", False): list(VALUES)}
    assert _without_created_values(generate_latest(_mine(values, labelled=False))) == (
        _without_created_values(generate_latest(_theirs(values, labelled=False)))
    )


async def test_many_tasks_recording_lose_nothing() -> None:
    """Recording from many tasks of one loop (blockmon's hot paths) while another thread
    scrapes: every observation counted, and each scrape a consistent histogram."""
    timings = Timings("t_seconds", "Durations", ("operation",), BOUNDS, counter=("t_total", "E"))
    registry = CollectorRegistry()
    registry.register(TimingsCollector(timings))
    stop = threading.Event()
    inconsistent: list[str] = []

    def scrape() -> None:
        while not stop.is_set():
            for family in registry.collect():
                buckets = [s.value for s in family.samples if s.name.endswith("_bucket")]
                if buckets != sorted(buckets):
                    inconsistent.append(str(buckets))

    scraper = threading.Thread(target=scrape)
    scraper.start()

    async def work(n: int) -> None:
        series = timings.series("op")
        for i in range(1000):
            record(series, (i % 7) * 0.001)
            if i % 100 == 0:
                await asyncio.sleep(0)

    try:
        await asyncio.gather(*(work(n) for n in range(50)))
    finally:
        stop.set()
        scraper.join(timeout=30)
    assert not scraper.is_alive()
    assert not inconsistent
    assert registry.get_sample_value("t_seconds_count", {"operation": "op"}) == 50_000
    assert registry.get_sample_value("t_total", {"operation": "op", "status": "success"}) == 50_000
