"""The issue's targets, checked against one run: one PASS/FAIL/INCONCLUSIVE line each.

A layer's overhead is judged on what the machine's load hardly moves: Python calls per
item (cProfile, the median of the profiled calls) against the limit, and client CPU per
item as a guard against a cost the calls miss (e.g. greenlet switches): it fails only
when even the trimmed-best per-round CPU ratio exceeds the limit by more than the noise:
`CPU_RESOLUTION` (identical code paths on this shared machine) or, when wider, the
spread of this run's own trimmed per-round ratios (a CPU ratio whose rounds read 1.0 to
1.4 cannot show a 0.12 excess that the calls do not). Throughput is printed beside. Targets that only throughput can answer (pipelining, overload, the unit of
work against the asyncpg pool) compare the trimmed range of the per-round ratios with
the floor: PASS when all of it is above, FAIL when all of it is below, INCONCLUSIVE when
the floor lies inside the noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from harness import Outcome, Row

CPU_RESOLUTION = 0.10  # identical code paths read 0.9-1.1x (and worse) in CPU per item


@dataclass
class Verdict:
    target: str
    detail: str
    ok: bool | None  # None: not measured, or inconclusive
    inconclusive: bool = False

    def line(self) -> str:
        word = (
            "INCONCLUSIVE"
            if self.inconclusive
            else {True: "PASS", False: "FAIL", None: "N/A"}[self.ok]
        )
        return f"{word:<5} {self.target}: {self.detail}"


def trimmed(values: list[float]) -> tuple[float, float]:
    """The range of ``values`` without the most extreme eighth at each end (at least one
    value each side from five values on)."""
    ordered = sorted(values)
    cut = max(1, len(ordered) // 8) if len(ordered) >= 5 else 0
    kept = ordered[cut : len(ordered) - cut]
    return kept[0], kept[-1]


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval that holds the median of what ``values`` sample with
    at least ``confidence``: the k-th smallest and k-th largest value, k the largest
    rank whose binomial tail ``P(Bin(n, 1/2) < k)`` stays within ``(1 - confidence) / 2``
    (with 15 values, the 4th smallest and 4th largest). The range of single rounds
    would judge one round's noise, not the median's."""
    ordered = sorted(values)
    n = len(ordered)
    tail, k = 0.0, 0
    while k < n // 2:
        tail += math.comb(n, k) / 2**n  # P(Bin(n, 1/2) = k)
        if tail > (1 - confidence) / 2:
            break
        k += 1
    k = max(k, 1)
    return ordered[k - 1], ordered[n - k]


def _measured(outcomes: dict[str, Outcome], case: str, *variants: str) -> Outcome | None:
    outcome = outcomes.get(case)
    if outcome is None or any(v not in outcome.rates for v in variants):
        return None
    return outcome


def overhead(
    outcomes: dict[str, Outcome], target: str, case: str, num: str, den: str, limit: float
) -> Verdict:
    """``num`` costs at most ``limit`` x ``den`` in Python calls and client CPU per item."""
    name = f"{target} [{case}]"
    outcome = _measured(outcomes, case, num, den)
    if outcome is None:
        return Verdict(name, "not measured", None)
    calls = outcome.calls_ratio(num, den)
    cpu = outcome.paired(num, den, cpu=True)
    low, high = trimmed(cpu)
    cpu_limit = limit + max(CPU_RESOLUTION, high - low)
    detail = (
        f"calls {outcome.calls[num]:,.0f} / {outcome.calls[den]:,.0f} = {calls:.3f}, "
        f"CPU/item {statistics.median(cpu):.3f} [{low:.2f}-{high:.2f}] "
        f"(<= {limit:.3g}, CPU <= {cpu_limit:.3g}); "
        f"throughput {outcome.ratio(num, den):.2f}"
    )
    return Verdict(name, detail, calls <= limit and low <= cpu_limit)


def throughput(
    outcomes: dict[str, Outcome], target: str, case: str, num: str, den: str, floor: float
) -> Verdict:
    """``num`` runs at least ``floor`` x ``den``'s items per second."""
    name = f"{target} [{case}]"
    outcome = _measured(outcomes, case, num, den)
    if outcome is None:
        return Verdict(name, "not measured", None)
    ratios = outcome.paired(num, den)
    low, high = median_interval(ratios)
    detail = (
        f"{num} / {den} = {statistics.median(ratios):.3f} "
        f"[{low:.2f}-{high:.2f}: 95% interval of the median of {len(ratios)} rounds] "
        f"(>= {floor})"
    )
    if low >= floor:
        return Verdict(name, detail, True)
    if high < floor:
        return Verdict(name, detail, False)
    return Verdict(name, detail, None, inconclusive=True)


def _row(rows: list[Row], name: str) -> Row | None:
    return next((r for r in rows if r.name == name), None)


def _below(rows: list[Row], target: str, name: str, ceiling: float) -> Verdict:
    row = _row(rows, name)
    if row is None or row.value is None:
        return Verdict(target, row.note if row else "not measured", None)
    return Verdict(target, f"{row.value:.3f} {row.unit} (< {ceiling})", row.value < ceiling)


def verdicts(outcomes: dict[str, Outcome], rows: list[Row]) -> list[Verdict]:
    out: list[Verdict] = []
    stacks = [k for k in outcomes if k.startswith("pg.") and not k.startswith("pg.unit.")]
    for case in stacks:
        out.append(
            overhead(
                outcomes, "instrumented <= 1.02x SQLAlchemy", case, "blockmon", "SQLAlchemy", 1.02
            )
        )
    for case in stacks:
        if "SQLAlchemy, no timeouts" in outcomes[case].calls:
            target = "engine <= 1.05x bare create_async_engine calls"
            out.append(
                overhead(outcomes, target, case, "blockmon", "SQLAlchemy, no timeouts", 1.05)
            )
    redis = [k for k in outcomes if k.startswith("redis.")]
    for case in redis:
        for ours in ("blockmon client", "blockmon cache"):
            for suffix in ("", " x100"):
                target = f"{ours}{suffix} <= 1.02x redis.asyncio{suffix}"
                out.append(
                    overhead(outcomes, target, case, ours + suffix, "redis.asyncio" + suffix, 1.02)
                )
    for case in [k for k in stacks if not k.startswith("pg.tx.")]:
        target = "statements <= 1/0.9x asyncpg pool"
        out.append(overhead(outcomes, target, case, "blockmon statements", "asyncpg pool", 1 / 0.9))
    for case in [k for k in stacks if k.startswith("pg.tx.")]:
        target = "unit of work <= asyncpg pool"
        out.append(overhead(outcomes, target, case, "blockmon unit", "asyncpg pool", 1.0))
        target = "Transactions <= 1.05x SQLAlchemy AsyncSession"
        out.append(
            overhead(outcomes, target, case, "blockmon transactions", "SQLAlchemy session", 1.05)
        )
    for case in [k for k in outcomes if k.startswith("pg.unit.")]:
        target = "unit of work >= 0.95x asyncpg pool throughput"
        out.append(throughput(outcomes, target, case, "blockmon unit", "asyncpg pool", 0.95))
    for case in [k for k in outcomes if k.startswith("validation.")]:
        target = "validation=bypass costs <= 3%"
        out.append(overhead(outcomes, target, case, "validation=bypass", "validation=none", 1.03))
    for case in [k for k in outcomes if k.startswith("pipeline.")]:
        target = "pipelined >= 4x unbatched"
        out.append(throughput(outcomes, target, case, "blockmon cache x100", "blockmon cache", 4.0))
    overload = outcomes.get("overload.pk")
    if overload is None:
        out.append(Verdict("1000 callers on 10 connections", "not measured", None))
    else:
        errors = overload.errors["1000 callers"]
        verdict = throughput(
            outcomes,
            "1000 callers on 10 connections",
            "overload.pk",
            "1000 callers",
            "32 callers",
            0.9,
        )
        verdict.detail = f"{errors} errors, {verdict.detail}"
        if errors:
            verdict.ok, verdict.inconclusive = False, False
        out.append(verdict)
    # wall p99 on a loaded machine is time spent descheduled: judged on the probe's CPU
    out.append(
        _below(rows, "cached health probe p99 < 1 ms (CPU)", "cached /readyz probe CPU p99", 1.0)
    )
    out.append(_below(rows, "/metrics scrape < 10 ms", "/metrics scrape", 10.0))
    out.append(_below(rows, "blockmon --help < 0.3 s", "blockmon --help", 0.3))
    errors = [
        f"{k}/{v}"
        for k, o in outcomes.items()
        for v, n in o.errors.items()
        if n and k != "overload.pk"
    ]
    out.append(Verdict("no errors in any case", ", ".join(errors) or "none", not errors))
    return out
