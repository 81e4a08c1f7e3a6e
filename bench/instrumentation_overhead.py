"""Overhead of blockmon's metrics instrumentation against bare SQLAlchemy and redis-py.

Runs the same workload with the instrumentation installed and removed, in interleaved
rounds whose order alternates (the machine is shared, so this cancels drift), and prints
the median per operation of each: wall time, and this process's CPU time, which is what
instrumentation adds and what other processes on the machine disturb least. Also times
the statement hooks alone, without I/O.

    .venv/bin/python bench/instrumentation_overhead.py [--rounds 7] [--ops 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from prometheus_client import CollectorRegistry
from sqlalchemy import text

from blockmon.config.file import load_settings
from blockmon.metrics.postgres import PostgresMetrics
from blockmon.metrics.redis import RedisMetrics
from blockmon.postgres.engine import create_engine
from blockmon.redis.client import create_client

SELECT = text("SELECT 1")


async def pg_round(engine, ops: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    async with engine.connect() as conn:
        for _ in range(ops):
            await conn.execute(SELECT)
    return (time.perf_counter() - wall) / ops, (time.process_time() - cpu) / ops


async def redis_round(client, ops: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(ops):
        await client.get("blockmon-bench:missing")
    return (time.perf_counter() - wall) / ops, (time.process_time() - cpu) / ops


def hook_cost(n: int = 200_000) -> float:
    """What recording one statement costs, without I/O: the Statements observer."""
    metrics = PostgresMetrics(CollectorRegistry())
    started = time.perf_counter()
    for _ in range(n):
        metrics.observe("SELECT 1", None, 0.0004, None)
    return (time.perf_counter() - started) / n


async def main(rounds: int, ops: int) -> None:
    settings = load_settings()
    engine = create_engine(settings.postgres)
    client = create_client(settings.redis)
    pg = PostgresMetrics(CollectorRegistry())
    rd = RedisMetrics(CollectorRegistry())
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {
        (name, on): [] for name in ("pg", "redis") for on in (False, True)
    }

    async def measure(on: bool) -> None:
        if on:
            pg.install(engine)
            rd.install(client)
        results["pg", on].append(await pg_round(engine, ops))
        results["redis", on].append(await redis_round(client, ops))
        if on:
            pg.uninstall()
            rd.uninstall()

    try:
        await pg_round(engine, 50)  # warm up: connect, prepare
        await redis_round(client, 50)
        for i in range(rounds):
            for on in (False, True) if i % 2 == 0 else (True, False):
                await measure(on)
    finally:
        await client.aclose()
        await engine.dispose()
    for name in ("pg", "redis"):
        for column, label in ((0, "wall"), (1, "cpu ")):
            b = statistics.median(r[column] for r in results[name, False])
            i = statistics.median(r[column] for r in results[name, True])
            print(
                f"{name:5} {label} bare {b * 1e6:7.1f} us/op  instrumented {i * 1e6:7.1f} us/op"
                f"  overhead {(i - b) * 1e6:+6.1f} us ({(i / b - 1) * 100:+.1f}%)"
            )
    print(f"recording one statement alone: {hook_cost() * 1e6:.2f} us/statement")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.ops))
