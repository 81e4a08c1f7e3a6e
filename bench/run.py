"""blockmon's benchmark: ``python bench/run.py [--quick] [--only TEXT] [--uvloop]``.

Runs every case in one session against the configured PostgreSQL and Redis (a
database and a key prefix of the run's own, bench/run_state.py, removed at the end), interleaving the
variants of each case, then prints medians, ratios and one PASS/FAIL line per target.
See docs/performance.md (results and targets) and bench/NOTES.md (how they were reached).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import ceilings  # noqa: E402
import compat_costs  # noqa: E402
import monitoring_cases  # noqa: E402
import pg_cases  # noqa: E402
import redis_cases  # noqa: E402
import startup  # noqa: E402
import sweep  # noqa: E402
from harness import Case, Outcome, Row, Timing, interleave  # noqa: E402
from run_state import RunState, run_state  # noqa: E402
from targets import verdicts  # noqa: E402

QUICK = Timing(window=0.14, rounds=5, warmup=0.06, profiled_calls=31)
FULL = Timing(window=2.0, rounds=5, warmup=1.0, profiled_calls=201)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the argument, exit code 2, no usage dump."""
        self.exit(2, f"bench/run.py: error: {message}\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short windows: the whole run under 2 minutes"
    )
    parser.add_argument(
        "--only", metavar="TEXT", help="run only cases and groups whose id contains TEXT"
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop (blockmon.cli.loop) instead of asyncio"
    )
    parser.add_argument("--window", type=float, help="seconds per measurement window")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per case")
    parser.add_argument(
        "--plot",
        action="store_true",
        help="instead of the cases: the sweep over tasks and pool sizes, drawn to docs/img/sweep.png",
    )
    parser.add_argument(
        "--log",
        metavar="FILE",
        default=str(Path(tempfile.gettempdir()) / "blockmon-bench.log"),
        help="where the log lines of the containers under test go (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.window is not None and not 0 < args.window <= 60:
        parser.error(f"--window: must be > 0 and <= 60 seconds, got {args.window}")
    if args.rounds is not None and not 1 <= args.rounds <= 100:
        parser.error(f"--rounds: must be between 1 and 100, got {args.rounds}")
    return args


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def versions() -> str:
    """The measured libraries' versions; uvloop (the speed extra) may be absent."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    names = ("sqlalchemy", "asyncpg", "redis", "hiredis", "prometheus-client", "uvloop")
    return ", ".join(f"{n} {installed(n)}" for n in names)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3f}"


def spread(rates: list[float]) -> float:
    """Half the range of the rounds, relative to their median: how noisy the figure is."""
    return (max(rates) - min(rates)) / 2 / statistics.median(rates)


def table(outcomes: list[Outcome], rows: list[Row]) -> str:
    lines = [
        "| case | variant | median | ratio | spread | client CPU/item | Python calls/item | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for outcome in outcomes:
        base = outcome.case.variants[0].name
        for variant in outcome.case.variants:
            name = variant.name
            lines.append(
                f"| {outcome.case.title} | {name} | {fmt(outcome.median(name))} {outcome.case.unit} "
                f"| {outcome.ratio(name, base):.2f} | ±{spread(outcome.rates[name]):.0%} "
                f"| {outcome.cpu_per_item(name) * 1e6:.0f} µs | {outcome.calls[name]:,.0f} "
                f"| {outcome.errors[name]} |"
            )
    lines += ["", "| group | measure | value | note |", "|---|---|---:|---|"]
    for row in rows:
        value = "n/a" if row.value is None else f"{fmt(row.value)} {row.unit}"
        lines.append(f"| {row.group} | {row.name} | {value} | {row.note} |")
    return "\n".join(lines)


Group = Callable[[RunState], AbstractAsyncContextManager[list[Case]]]


SWEEP_PNG = ROOT / "docs" / "img" / "sweep.png"


async def plot(args: argparse.Namespace) -> int:
    """The sweep: tasks x pool sizes for Statements and the engine, table and PNG."""
    seconds = args.window or 1.0
    async with run_state() as state:
        points = await sweep.sweep(state, seconds)
    title = (
        f"blockmon sweep, {time.strftime('%Y-%m-%d %H:%M %Z')}, PK SELECT, {seconds} s windows; "
        f"{machine()}; load average {load()}"
    )
    sweep.plot(points, SWEEP_PNG, title)
    print(title)
    print()
    print(sweep.table(points))
    print(f"\nplot: {SWEEP_PNG.relative_to(ROOT)}")
    return 1 if any(p.errors for p in points) else 0


async def bench(args: argparse.Namespace) -> int:
    timing = QUICK if args.quick else FULL
    timing = Timing(
        args.window or timing.window,
        args.rounds or timing.rounds,
        timing.warmup,
        timing.profiled_calls,
    )
    wanted: Callable[[str], bool] = lambda key: not args.only or args.only in key  # noqa: E731
    notes: list[str] = []
    groups: list[tuple[str, Group]] = [
        ("pg", pg_cases.stacks),
        ("validation", pg_cases.validation),
        ("leaks", pg_cases.leaks),
        ("overload", pg_cases.overload),
        ("redis", lambda s: redis_cases.stacks(s, notes)),
        ("peers", lambda s: pg_cases.peers(s, notes, (1, 32))),
        ("compat", compat_costs.costs),
        ("compat", lambda s: compat_costs.costs(s, compat_costs.EDGES, "compat.edges")),
    ]
    if args.quick and not args.only:  # informational groups, left out of the 2 minutes
        groups = [g for g in groups if g[0] not in {"peers", "compat"}]
        notes.append(
            "quick run: peers, compat and ceilings left out (informational; --only peers /"
            " compat / ceiling runs them)"
        )
    outcomes: list[Outcome] = []
    rows: list[Row] = []
    started = time.perf_counter()
    async with run_state() as state:
        for name, group in groups:
            head = (args.only or "").split(".")[0]
            if args.only and head != name and head in {n for n, _ in groups}:
                continue
            async with group(state) as cases:
                for case in cases:
                    if wanted(case.key):
                        print(f"  {case.key} ...", file=PROGRESS, flush=True)
                        outcomes.append(await interleave(case, timing))
        if wanted("monitoring"):
            rows += await monitoring_cases.rows(state, 2000 if args.quick else 10000)
        if wanted("startup"):
            rows += await asyncio.to_thread(
                startup.rows, 2 if args.quick else 7, state.settings.postgres.database
            )
        if wanted("ceiling") and (args.only or not args.quick):
            rows += await asyncio.to_thread(ceilings.pgbench, state.base, 3 if args.quick else 10)
            rows += await asyncio.to_thread(
                ceilings.redis_benchmark, state.base, 10_000 if args.quick else 100_000
            )
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"\nblockmon benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}, {'quick' if args.quick else 'full'} run "
        f"({timing.rounds} interleaved rounds x {timing.window} s windows per variant, median), "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(f"machine: {machine()}; event loop: {loop}; load average {load()}")
    print(f"versions: {versions()}")
    for note in notes:
        print(note)
    print()
    print(table(outcomes, rows))
    print()
    results = verdicts({o.case.key: o for o in outcomes}, rows, loop)
    for verdict in results:
        if args.only is None or verdict.ok is not None or verdict.info:
            print(verdict.line())
    failed = sum(v.ok is False for v in results)
    print(f"\n{failed} target(s) failed" if failed else "\nall measured targets passed")
    for outcome in outcomes:
        for variant, error in outcome.first_error.items():
            print(f"first error in {outcome.case.key} / {variant}: {error}", file=PROGRESS)
    return 1 if failed else 0


PROGRESS = sys.stderr  # progress lines; the containers' log lines go to --log


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.chdir(ROOT)
    try:
        log = open(args.log, "w")  # noqa: SIM115 (closed below, after the run)
    except OSError as error:
        print(
            f"bench/run.py: error: --log: cannot write {args.log}: {error.strerror}", file=PROGRESS
        )
        return 2
    with log, contextlib.redirect_stderr(log):
        print(f"log lines: {args.log}", file=PROGRESS, flush=True)
        work = plot(args) if args.plot else bench(args)
        if args.uvloop:
            from blockmon.cli.loop import run

            return run(work)
        return asyncio.run(work)


if __name__ == "__main__":
    sys.exit(main())
