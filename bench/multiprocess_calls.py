"""Python calls per operation with multi-process metrics on and off (bench/NOTES.md, "Multi-process metrics").

Runs itself twice, in fresh processes (prometheus_client picks its mode at import): once
without ``PROMETHEUS_MULTIPROC_DIR``, once with it set to an empty temporary directory.
Each run starts blockmon's container on the configured servers (``DATABASE_URL``,
``REDIS_URL`` or config.yml) and profiles 31 sequential calls of each operation with
`harness.python_calls`, printing the least and the median count, and counts the calls
of one inline recording into a series (what each timed operation adds).

    .venv/bin/python bench/multiprocess_calls.py
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import Any

CALLS = 31


def recording_calls() -> int:
    """Python calls of one inline recording, as the hot paths write it (deterministic: no
    event loop involved)."""
    from blockmon.metrics.recorder import Timings

    shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    timing = Timings("bench_seconds", "", ("op",), (0.1, 1.0), ("bench", ""), shared=shared)
    series = timing.series("x")
    profile = cProfile.Profile()
    profile.enable()
    series.counts[bisect_left(series.bounds, 0.01)] += 1
    series.sum += 0.01
    profile.disable()
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


async def measure() -> None:
    from harness import python_calls
    from sqlalchemy import text

    from blockmon import ApplicationContainer, Lifespan, load_mapping

    container = ApplicationContainer()
    container.config.from_dict(load_mapping())
    print(f"  one inline recording: {recording_calls()} calls")
    async with Lifespan(container):
        await container.monitoring.metrics()
        statements = await container.postgres.statements()
        engine = await container.postgres.engine()
        client = await container.redis.client()
        select = text("SELECT 1")

        async def engine_select() -> Any:
            async with engine.connect() as conn:
                return (await conn.execute(select)).scalar()

        # Redis first: asyncpg's cancelled command timeouts left in the loop's timer heap
        # would add 7-50 calls of timer comparisons to a GET (`harness.python_calls`).
        ops: dict[str, Callable[[], Awaitable[Any]]] = {
            "Redis GET": lambda: client.get("blockmon-bench:multiprocess:none"),
            "Statements.scalar('SELECT 1')": lambda: statements.scalar("SELECT 1"),
            "engine.connect() + SELECT 1": engine_select,
        }
        for name, op in ops.items():
            for _ in range(20):
                await op()  # warm: connections open, series bound
            counts = [await python_calls(op) for _ in range(CALLS)]
            print(f"  {name}: least {min(counts)}, median {statistics.median(counts):g}")


def main() -> int:
    if len(sys.argv) > 1:
        asyncio.run(measure())
        return 0
    here = os.path.dirname(os.path.abspath(__file__))
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = here
    print("single-process metrics:", flush=True)
    subprocess.run([sys.executable, __file__, "run"], env=env, check=True)
    directory = tempfile.mkdtemp(prefix="blockmon-mp-bench-")
    try:
        print("multi-process metrics (PROMETHEUS_MULTIPROC_DIR set):", flush=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = directory
        subprocess.run([sys.executable, __file__, "run"], env=env, check=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
