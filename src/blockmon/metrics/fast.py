"""Pre-bound increments for labelled prometheus_client children on per-statement paths.

``child.inc()`` costs three Python calls (a not-observable check, a sign check, the
value's locked increment) and ``Histogram.observe`` walks the buckets in a Python loop.
These bind the child's own value objects once, so a count is one call and an
observation a bisect in C plus two calls; the exposition is unchanged because the same
value objects are incremented. The value objects come from `blockmon._compat.prometheus`,
which falls back to the public ``inc``/``observe`` when prometheus_client's layout changed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from blockmon._compat import prometheus as prom_compat


def counter(child: Any) -> Callable[[float], None]:
    """``child.inc`` as one call: ``count(1)``."""
    return prom_compat.increment(child)


def histogram(child: Any) -> Callable[[float], None]:
    """``child.observe`` without the Python loop over buckets."""
    parts = prom_compat.histogram_parts(child)
    if parts is None:
        public: Callable[[float], None] = child.observe
        return public
    add_sum, bounds, increments = parts  # bounds end with +Inf: bisect always lands inside

    def observe(amount: float) -> None:
        add_sum(amount)
        increments[bisect_left(bounds, amount)](1)

    return observe
