"""Cache hits and misses, read from the Cache's plain counters when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from blockmon.redis.cache import Cache


class CacheCollector(Collector):
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("blockmon_cache_hits", "Cache reads that found a value")
        yield CounterMetricFamily("blockmon_cache_misses", "Cache reads that found nothing")

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "blockmon_cache_hits", "Cache reads that found a value", value=self.cache.hits
        )
        yield CounterMetricFamily(
            "blockmon_cache_misses", "Cache reads that found nothing", value=self.cache.misses
        )
