"""The issue's targets, checked against one run's medians: one PASS/FAIL line each."""

from __future__ import annotations

from dataclasses import dataclass

from harness import Outcome, Row


@dataclass
class Verdict:
    target: str
    detail: str
    ok: bool | None  # None: could not be measured in this run

    def line(self) -> str:
        word = {True: "PASS", False: "FAIL", None: "N/A "}[self.ok]
        return f"{word}  {self.target}: {self.detail}"


def _ratio(outcomes: dict[str, Outcome], case: str, num: str, den: str) -> float | None:
    outcome = outcomes.get(case)
    if outcome is None or num not in outcome.rates or den not in outcome.rates:
        return None
    return outcome.ratio(num, den)


def _at_least(
    outcomes: dict[str, Outcome], target: str, case: str, num: str, den: str, floor: float
) -> Verdict:
    ratio = _ratio(outcomes, case, num, den)
    name = f"{target} [{case}]"
    if ratio is None:
        return Verdict(name, "not measured", None)
    return Verdict(name, f"{num} / {den} = {ratio:.3f} (>= {floor})", ratio >= floor)


def _row(rows: list[Row], name: str) -> Row | None:
    return next((r for r in rows if r.name == name), None)


def _below(rows: list[Row], target: str, name: str, ceiling: float) -> Verdict:
    row = _row(rows, name)
    if row is None or row.value is None:
        return Verdict(target, row.note if row else "not measured", None)
    return Verdict(target, f"{row.value:.3f} {row.unit} (< {ceiling})", row.value < ceiling)


def verdicts(outcomes: dict[str, Outcome], rows: list[Row]) -> list[Verdict]:
    out: list[Verdict] = []
    pg = [k for k in outcomes if k.startswith("pg.")]
    for case in pg:
        out.append(
            _at_least(
                outcomes, "instrumented >= 0.97x SQLAlchemy", case, "blockmon", "SQLAlchemy", 0.97
            )
        )
    redis = [k for k in outcomes if k.startswith("redis.")]
    for case in redis:
        for raw, ours in (
            ("redis.asyncio", "blockmon client"),
            ("redis.asyncio", "blockmon cache"),
        ):
            for suffix in ("", " x100"):
                target = f"{ours}{suffix} >= 0.97x {raw}{suffix}"
                out.append(_at_least(outcomes, target, case, ours + suffix, raw + suffix, 0.97))
    for case in [k for k in pg if not k.startswith("pg.tx.")]:
        out.append(
            _at_least(
                outcomes,
                "statements >= 0.9x asyncpg pool",
                case,
                "blockmon statements",
                "asyncpg pool",
                0.9,
            )
        )
    for case in [k for k in outcomes if k.startswith("validation.")]:
        out.append(
            _at_least(
                outcomes,
                "validation costs <= 3%",
                case,
                "validation=bypass",
                "validation=none",
                0.97,
            )
        )
    for case in redis:
        target = "pipelined >= 4x unbatched"
        out.append(_at_least(outcomes, target, case, "blockmon cache x100", "blockmon cache", 4.0))
    overload = outcomes.get("overload.pk")
    if overload is None:
        out.append(Verdict("1000 callers on 10 connections", "not measured", None))
    else:
        ratio = overload.ratio("1000 callers", "32 callers")
        errors = overload.errors["1000 callers"]
        out.append(
            Verdict(
                "1000 callers on 10 connections",
                f"{errors} errors, throughput {ratio:.3f}x of 32 callers (>= 0.9)",
                errors == 0 and ratio >= 0.9,
            )
        )
    out.append(_below(rows, "cached health probe p99 < 1 ms", "cached /readyz probe p99", 1.0))
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
