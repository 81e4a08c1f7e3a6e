"""The unit of work against the asyncpg pool under contention: throughput, p50/p99/max
latency and client CPU per unit of the five-statement transaction, at ``--tasks``
callers on 10 connections, in interleaved windows (bench/NOTES.md, "The unit of
work at 32 tasks").

    .venv/bin/python bench/unit_latency.py [--tasks 32] [--rounds 5] [--window 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pg_cases
from harness import latencies
from run_state import run_state

VARIANTS = ("asyncpg pool", "blockmon unit")


async def window(op: Callable[[], Awaitable[Any]], tasks: int, seconds: float) -> tuple[float, ...]:
    """(units/s, p50, p99, max, CPU per unit) of ``tasks`` callers running ``op``."""
    taken: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await op()
            taken.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(tasks)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    p50, p99 = latencies(taken)
    return len(taken) / wall, p50, p99, max(taken), cpu / len(taken)


async def main(tasks: int, rounds: int, seconds: float) -> None:
    async with run_state() as state, pg_cases.stacks(state) as cases:
        case = next(c for c in cases if c.key == "pg.tx.32")
        ops = {v.name: v.op for v in case.variants if v.name in VARIANTS}
        for name in VARIANTS:
            await window(ops[name], tasks, seconds / 2)  # warm up
        results: dict[str, list[tuple[float, ...]]] = {name: [] for name in VARIANTS}
        for i in range(rounds):
            for name in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                results[name].append(await window(ops[name], tasks, seconds))
    print(f"{tasks} tasks, 10 connections, {rounds} windows of {seconds} s each (medians)")
    for name, rows in results.items():
        rate, p50, p99, worst, cpu = (statistics.median(r[i] for r in rows) for i in range(5))
        print(
            f"{name:14} {rate:7,.0f} units/s  p50 {p50 * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms"
            f"  max {worst * 1e3:6.1f} ms  CPU/unit {cpu * 1e6:4.0f} µs"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.rounds, args.window))
