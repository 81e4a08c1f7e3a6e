"""Pre-bound increments for labelled prometheus_client children on per-statement paths.

``child.inc()`` costs three Python calls (a not-observable check, a sign check, the
value's locked increment) and ``Histogram.observe`` walks the buckets in a Python loop.
These bind the child's own value objects once, so a count is one call and an
observation a bisect in C plus two calls; the exposition is unchanged because the same
value objects are incremented. They rely on prometheus_client's child layout
(``_value``, ``_sum``, ``_buckets``, ``_upper_bounds``; pinned in constraints.txt, and
tests/monitoring check the exposed values).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any


def counter(child: Any) -> Callable[[float], None]:
    """``child.inc`` as one call: ``count(1)``."""
    increment: Callable[[float], None] = child._value.inc
    return increment


def histogram(child: Any) -> Callable[[float], None]:
    """``child.observe`` without the Python loop over buckets."""
    add_sum = child._sum.inc
    bounds = tuple(child._upper_bounds)  # ends with +Inf, so bisect always lands inside
    increments = tuple(bucket.inc for bucket in child._buckets)

    def observe(amount: float) -> None:
        add_sum(amount)
        increments[bisect_left(bounds, amount)](1)

    return observe
