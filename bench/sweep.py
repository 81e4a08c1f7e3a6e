"""Cost as work grows: PK SELECT through blockmon's Statements and its engine
(``engine.connect()``), and through the asyncpg pool and bare SQLAlchemy beside them (same
pool size, same driver settings), at 1 to 512 concurrent tasks and pool sizes 5, 10 and
20, one closed-loop window each; throughput, p50/p99 latency per call and, for blockmon's
engine, the mean wait for a connection (its own acquire histogram; Statements queue at
their FIFO gate in front of the pool, which shows in their latency instead). ``bench/run.py --plot`` runs it and
draws docs/img/sweep.png."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from harness import latencies
from pg_cases import PK, PK_DOLLAR, PK_TEXT, container, key
from run_state import RunState
from sqlalchemy.ext.asyncio import create_async_engine

from blockmon.postgres.engine import connect_args, engine_url

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
    wait: float | None  # mean seconds a checkout waited for a connection (blockmon's engine)
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


async def sweep(run: RunState, seconds: float) -> list[Point]:
    points: list[Point] = []
    for pool in POOLS:
        async with AsyncExitStack() as stack:
            app = await container(run, stack, pool_size=pool, pool_timeout=30)
            statements = await app.postgres.statements()
            engine = await app.postgres.engine()
            acquire = (await app.monitoring.metrics()).postgres.acquire.series()
            url = engine_url(run.settings.postgres)
            driver = connect_args(run.settings.postgres, url)
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            raw = await asyncpg.create_pool(dsn, min_size=pool, max_size=pool, **driver)
            stack.push_async_callback(raw.close)
            bare = create_async_engine(url, pool_size=pool, max_overflow=0, connect_args=driver)
            stack.push_async_callback(bare.dispose)
            for path, op in _ops(statements, engine, raw, bare).items():
                for tasks in TASKS:
                    await _window(op, min(tasks, pool), seconds / 4)  # warm the pool up
                    count, total = sum(acquire.counts), acquire.sum
                    rate, samples, errors = await _window(op, tasks, seconds)
                    waited = sum(acquire.counts) - count
                    p50, p99 = latencies(samples) if samples else (0.0, 0.0)
                    wait = None
                    if path == "blockmon engine":
                        wait = (acquire.sum - total) / waited if waited else 0.0
                    points.append(Point(path, pool, tasks, rate, p50, p99, wait, errors))
    return points


def _ops(
    statements: Any, engine: Any, raw: Any, bare: Any
) -> dict[str, Callable[[], Awaitable[Any]]]:
    async def fast() -> Any:
        return await statements.fetch_one(PK, {"id": key()})

    async def pooled() -> Any:
        return await raw.fetchrow(PK_DOLLAR, key())

    def connected(target: Any) -> Callable[[], Awaitable[Any]]:
        async def op() -> Any:
            async with target.connect() as conn:
                return (await conn.execute(PK_TEXT, {"id": key()})).first()

        return op

    return {
        "blockmon statements": fast,
        "asyncpg pool": pooled,
        "blockmon engine": connected(engine),
        "SQLAlchemy": connected(bare),
    }


def table(points: list[Point]) -> str:
    lines = [
        "| path | pool | tasks | calls/s | p50 | p99 | mean pool wait | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p.path} | {p.pool} | {p.tasks} | {p.rate:,.0f} | {p.p50 * 1e3:.2f} ms "
            f"| {p.p99 * 1e3:.2f} ms | {'—' if p.wait is None else f'{p.wait * 1e3:.2f} ms'} "
            f"| {p.errors} |"
        )
    return "\n".join(lines)


def plot(points: list[Point], target: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    colors = {
        "blockmon statements": "C0",
        "asyncpg pool": "C1",
        "blockmon engine": "C2",
        "SQLAlchemy": "C3",
    }
    styles = {5: ":", 10: "-", 20: "--"}
    for path, color in colors.items():
        for pool, style in styles.items():
            line = [p for p in points if p.path == path and p.pool == pool]
            xs = [p.tasks for p in line]
            label = f"{path}, pool {pool}"
            axes[0].plot(xs, [p.rate for p in line], style, color=color, marker="o", label=label)
            axes[1].plot(xs, [p.p99 * 1e3 for p in line], style, color=color, marker="o")
            if path == "blockmon engine":
                waits = [(p.wait or 0.0) * 1e3 for p in line]
                axes[2].plot(xs, waits, style, color=color, marker="o", label=label)
    for axis, name in zip(
        axes, ("calls per second", "p99 latency (ms)", "mean pool wait (ms)"), strict=True
    ):
        axis.set_xscale("log", base=2)
        axis.set_xticks(TASKS, [str(t) for t in TASKS])
        axis.set_xlabel("concurrent tasks")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=6, ncol=2)
    axes[2].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)
