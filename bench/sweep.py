"""Cost as work grows: PK SELECT through blockmon's Statements and its engine
(``engine.connect()``) at 1 to 512 concurrent tasks and pool sizes 5, 10 and 20, one
closed-loop window each; throughput, p50/p99 latency per call and the mean wait for a
connection (from blockmon's own acquire histogram). ``bench/run.py --plot`` runs it and
draws docs/img/sweep.png."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import latencies
from pg_cases import PK, PK_TEXT, container, key
from scratch import Scratch

TASKS = (1, 8, 32, 128, 512)
POOLS = (5, 10, 20)


@dataclass(frozen=True)
class Point:
    path: str  # "statements" or "engine"
    pool: int
    tasks: int
    rate: float  # calls per second
    p50: float  # seconds
    p99: float
    wait: float  # mean seconds a checkout waited for a connection
    errors: int


async def _window(
    op: Callable[[], Awaitable[Any]], tasks: int, seconds: float
) -> tuple[float, list[float], int]:
    samples: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal errors
        clock = time.perf_counter
        while clock() < deadline:
            started = clock()
            try:
                await op()
            except Exception:
                errors += 1
            else:
                samples.append(clock() - started)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(tasks)))
    return len(samples) / (time.perf_counter() - start), samples, errors


async def sweep(scratch: Scratch, seconds: float) -> list[Point]:
    points: list[Point] = []
    for pool in POOLS:
        async with AsyncExitStack() as stack:
            app = await container(scratch, stack, pool_size=pool, pool_timeout=30)
            statements = await app.postgres.statements()
            engine = await app.postgres.engine()
            acquire = (await app.monitoring.metrics()).postgres.acquire.series()

            for path, op in _ops(statements, engine).items():
                for tasks in TASKS:
                    await _window(op, min(tasks, pool), seconds / 4)  # warm the pool up
                    count, total = sum(acquire.counts), acquire.sum
                    rate, samples, errors = await _window(op, tasks, seconds)
                    waited = sum(acquire.counts) - count
                    p50, p99 = latencies(samples) if samples else (0.0, 0.0)
                    wait = (acquire.sum - total) / waited if waited else 0.0
                    points.append(Point(path, pool, tasks, rate, p50, p99, wait, errors))
    return points


def _ops(statements: Any, engine: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    async def fast() -> Any:
        return await statements.fetch_one(PK, {"id": key()})

    async def slow() -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(PK_TEXT, {"id": key()})).first()

    return {"statements": fast, "engine": slow}


def table(points: list[Point]) -> str:
    lines = [
        "| path | pool | tasks | calls/s | p50 | p99 | mean pool wait | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p.path} | {p.pool} | {p.tasks} | {p.rate:,.0f} | {p.p50 * 1e3:.2f} ms "
            f"| {p.p99 * 1e3:.2f} ms | {p.wait * 1e3:.2f} ms | {p.errors} |"
        )
    return "\n".join(lines)


def plot(points: list[Point], target: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for path, style in (("statements", "-"), ("engine", "--")):
        for pool in POOLS:
            line = [p for p in points if p.path == path and p.pool == pool]
            xs = [p.tasks for p in line]
            label = f"{path}, pool {pool}"
            axes[0].plot(xs, [p.rate for p in line], style, marker="o", label=label)
            axes[1].plot(xs, [p.p99 * 1e3 for p in line], style, marker="o", label=label)
            axes[2].plot(xs, [p.wait * 1e3 for p in line], style, marker="o", label=label)
    for axis, name in zip(
        axes, ("calls per second", "p99 latency (ms)", "mean pool wait (ms)"), strict=True
    ):
        axis.set_xscale("log", base=2)
        axis.set_xticks(TASKS, [str(t) for t in TASKS])
        axis.set_xlabel("concurrent tasks")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)


def median_rate(points: list[Point], path: str) -> float:
    return statistics.median(p.rate for p in points if p.path == path)
