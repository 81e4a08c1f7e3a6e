"""The benchmark's verdict arithmetic (bench/targets.py): the median's confidence interval
that throughput-only targets are judged on."""

import math
import statistics
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from targets import median_interval


@pytest.mark.parametrize(("n", "ranks"), [(5, (1, 5)), (10, (2, 9)), (15, (4, 12)), (30, (10, 21))])
def test_the_interval_is_the_textbook_order_statistics(n: int, ranks: tuple[int, int]) -> None:
    """The ranks of the distribution-free 95% interval for the median (e.g. Conover)."""
    assert median_interval([float(v) for v in range(1, n + 1)]) == ranks


@given(st.lists(st.floats(0.01, 100), min_size=5, max_size=40))
def test_the_interval_holds_the_sample_median_and_covers_95_percent(values: list[float]) -> None:
    low, high = median_interval(values)
    assert min(values) <= low <= statistics.median(values) <= high <= max(values)
    ordered = sorted(values)
    n, k = len(values), ordered.index(low) + 1
    # the interval's coverage for the true median: 1 - 2 P(Bin(n, 1/2) < k)
    coverage = 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n
    assert coverage >= 0.95 or k == 1
