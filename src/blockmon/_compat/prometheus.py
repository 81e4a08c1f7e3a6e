"""prometheus_client's value objects, for increments that skip the public methods' checks.

``child.inc()`` costs three Python calls and ``Histogram.observe`` walks the buckets in a
Python loop; incrementing the child's own value objects (``_value``, ``_sum``,
``_buckets``, ``_upper_bounds``) gives the same exposition for less. The probe increments a
throwaway counter and histogram that way and checks what they expose; otherwise the public
``inc``/``observe`` are used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

from blockmon._compat import Layout

Increment = Callable[[float], None]


def _probe() -> bool:
    counter: Any = Counter("probe", "probe", registry=None)
    counter._value.inc(2)
    histogram: Any = Histogram("probe", "probe", buckets=(1.0, 2.0), registry=None)
    add_sum, bounds, increments = histogram._sum.inc, histogram._upper_bounds, histogram._buckets
    add_sum(1.5)
    increments[1].inc(1)
    samples = {s.name: s.value for m in histogram.collect() for s in m.samples}
    counted = {s.name: s.value for m in counter.collect() for s in m.samples}
    return (
        counted.get("probe_total") == 2
        and list(bounds) == [1.0, 2.0, float("inf")]
        and samples.get("probe_sum") == 1.5
        and samples.get("probe_count") == 1
    )


LAYOUT = Layout("prometheus-client", _probe)


def increment(child: Counter) -> Increment:
    """``child.inc`` as one call (the value object's own ``inc``)."""
    if LAYOUT.ok():
        inc: Increment = child._value.inc
        return inc
    return child.inc


def histogram_parts(
    child: Histogram,
) -> tuple[Increment, tuple[float, ...], tuple[Increment, ...]] | None:
    """(add to the sum, the upper bounds ending with +Inf, each bucket's increment) of a
    histogram child, or None when only ``child.observe`` may be used."""
    if not LAYOUT.ok():
        return None
    raw: Any = child
    return raw._sum.inc, tuple(raw._upper_bounds), tuple(b.inc for b in raw._buckets)
