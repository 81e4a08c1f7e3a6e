"""Python calls per operation with multi-process metrics on and off (docs/performance.md).

Runs itself twice, in fresh processes (prometheus_client picks its mode at import): once
without ``PROMETHEUS_MULTIPROC_DIR``, once with it set to an empty temporary directory.
Each run starts blockmon's container on the configured servers (``DATABASE_URL``,
``REDIS_URL`` or config.yml) and profiles 31 sequential calls of each operation with
`harness.python_calls`, printing the least and the median count.

    .venv/bin/python bench/multiprocess_calls.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

CALLS = 31


async def measure() -> None:
    from harness import python_calls
    from sqlalchemy import text

    from blockmon import ApplicationContainer, Lifespan, load_mapping

    container = ApplicationContainer()
    container.config.from_dict(load_mapping())
    async with Lifespan(container):
        await container.monitoring.metrics()
        statements = await container.postgres.statements()
        engine = await container.postgres.engine()
        client = await container.redis.client()
        select = text("SELECT 1")

        async def engine_select() -> Any:
            async with engine.connect() as conn:
                return (await conn.execute(select)).scalar()

        ops: dict[str, Callable[[], Awaitable[Any]]] = {
            "Statements.scalar('SELECT 1')": lambda: statements.scalar("SELECT 1"),
            "engine.connect() + SELECT 1": engine_select,
            "Redis GET": lambda: client.get("blockmon-bench:multiprocess:none"),
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
