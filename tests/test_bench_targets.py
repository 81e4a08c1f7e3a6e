"""The benchmark's verdict arithmetic (bench/targets.py): the median's confidence interval
that throughput-only targets are judged on, and issue #22's target lines (their words,
PASS within each limit, FAIL past it)."""

import math
import statistics
import sys
from pathlib import Path
from typing import Any

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


def _outcome(key: str, calls: dict[str, float], rates: dict[str, list[float]]) -> Any:
    """An outcome of case ``key`` with these calls per item and per-round rates (client
    CPU per item the inverse of the rate)."""
    from harness import Case, Outcome, Variant

    async def op() -> None:
        return None

    case = Case(key, key, 1, [Variant(name, op) for name in calls])
    outcome = Outcome(case, calls=dict(calls), errors=dict.fromkeys(calls, 0))
    outcome.rates = {name: list(values) for name, values in rates.items()}
    outcome.cpu = {name: [1 / r for r in values] for name, values in rates.items()}
    return outcome


def _lines(
    engine: float, statements: float, unit_calls: float, unit_rate: float, loop: str = "asyncio"
) -> list[str]:
    """Issue #22's target lines for a run whose blockmon figures are these ratios of the
    references' (calls; the unit's rate per round)."""
    from targets import verdicts

    flat = [100.0] * 15
    outcomes = {
        "pg.select_1.1": _outcome(
            "pg.select_1.1",
            {
                "asyncpg pool": 400,
                "SQLAlchemy": 600,
                "blockmon": 600 * engine,
                "SQLAlchemy, no timeouts": 550,
                "blockmon statements": 400 * statements,
            },
            dict.fromkeys(
                ("asyncpg pool", "SQLAlchemy", "blockmon", "SQLAlchemy, no timeouts"), flat
            )
            | {"blockmon statements": flat},
        ),
        "pg.unit.32": _outcome(
            "pg.unit.32",
            {"asyncpg pool": 1000, "blockmon unit": 1000 * unit_calls},
            {"asyncpg pool": flat, "blockmon unit": [100.0 * unit_rate] * 15},
        ),
    }
    return [v.line() for v in verdicts(outcomes, [], loop)][:4]


def test_the_target_lines_say_issue_22s_targets() -> None:
    engine, bare, statements, unit = _lines(1.02, 0.5, 0.9, 1.0)
    assert engine == (
        "PASS  engine <= 1.03x the Python calls of a bare create_async_engine (same asyncpg "
        "settings) [pg.select_1.1]: calls 612 / 600 = 1.020 (<= 1.03); CPU/item 1.000, "
        "throughput 1.00"
    )
    assert bare == (
        "INFO  engine / a truly bare create_async_engine(url), Python calls (information, "
        "on asyncio) [pg.select_1.1]: calls 612 / 550 = 1.113"
    )
    assert statements.startswith(
        "PASS  Statements <= 0.55x the Python calls of an asyncpg pool for SELECT 1 "
        "[pg.select_1.1]: calls 200 / 400 = 0.500 (<= 0.55)"
    )
    assert unit.startswith(
        "PASS  unit of work >= 0.95x asyncpg pool throughput at 32 tasks, judged as <= "
        "1/0.95x its Python calls and client CPU per unit (throughput at 32 tasks is too "
        "noisy here) [pg.unit.32]: calls 900 / 1,000 = 0.900"
    )


@pytest.mark.parametrize(
    ("figures", "failing"),
    [
        ((1.04, 0.5, 0.9, 1.0), "engine"),
        ((1.0, 0.56, 0.9, 1.0), "Statements"),
        ((1.0, 0.5, 1.06, 1.0), "unit of work"),  # too many calls
        ((1.0, 0.5, 0.9, 0.7), "unit of work"),  # CPU per unit 1.43x, clear of the noise
    ],
)
def test_each_target_fails_past_its_limit(figures: tuple[float, ...], failing: str) -> None:
    lines = _lines(*figures)
    assert [line.split()[1] for line in lines if line.startswith("FAIL")] == [failing.split()[0]]


def test_on_uvloop_the_targets_are_information() -> None:
    """uvloop's loop makes no Python calls of its own (asyncpg's command timers, the
    pool's queue), so the calls targets, set on asyncio, are reported, not judged."""
    lines = _lines(1.04, 0.8, 1.06, 1.0, loop="uvloop")
    assert [line.split()[0] for line in lines] == ["INFO"] * 4
    assert "on uvloop) [pg.select_1.1]" in lines[1]
    assert all(
        line.endswith("(information on uvloop: the targets are judged on asyncio)")
        for line in (lines[0], lines[2], lines[3])
    )
