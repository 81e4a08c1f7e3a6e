"""New PostgreSQL connections per second at start-up and at the lifetime boundary, with
and without ``postgres.min_idle`` and the lifetime spread (docs/core.md, "Pool hygiene").

    .venv/bin/python bench/pool_hygiene.py [--workers 10] [--lifetime 60] [--think 0.005]

Start-up: ``workers`` callers start the moment the Resources are up; counted are the
connections opened while start-up ran and in the first second of traffic, and the slowest
first call. Lifetime boundary: the same callers for ``lifetime`` + 5 seconds; counted are
the reconnections after the first half: the most in any 100 ms and any second, and the
time from the first to the last (all of them are one connect storm without the spread).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from run_state import run_state
from sqlalchemy import event, text
from sqlalchemy.pool import Pool

from blockmon.containers import PostgresContainer
from blockmon.lifespan import Lifespan
from blockmon.postgres.pool import guard_for

_opened: list[float] = []


def _on_connect(dbapi_connection: Any, record: Any) -> None:
    _opened.append(time.perf_counter())


def _peak(times: list[float], width: float) -> int:
    """The most of ``times`` in any window ``width`` seconds wide."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] > width:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _traffic(engine: Any, workers: int, think: float, until: float) -> list[float]:
    """Each caller's first call's latency; callers run until ``until``."""
    firsts: list[float] = []

    async def caller() -> None:
        first = True
        while time.perf_counter() < until:
            started = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            if first:
                firsts.append(time.perf_counter() - started)
                first = False
            await asyncio.sleep(think)

    await asyncio.gather(*(caller() for _ in range(workers)))
    return firsts


async def start_up(config: dict[str, Any], workers: int, think: float, min_idle: int) -> str:
    container = PostgresContainer()
    container.config.from_dict(config | {"pool_size": workers, "min_idle": min_idle})
    _opened.clear()
    began = time.perf_counter()
    async with Lifespan(container):
        ready = time.perf_counter()
        engine = await container.engine()
        firsts = await _traffic(engine, workers, think, time.perf_counter() + 1.0)
    during = sum(1 for t in _opened if t <= ready)
    first_second = sum(1 for t in _opened if ready < t <= ready + 1.0)
    return (
        f"start-up, min_idle {min_idle:>2}: {during:>2} opened during start-up "
        f"({(ready - began) * 1000:.0f} ms), {first_second:>2} in the first second of "
        f"traffic; slowest first call {max(firsts) * 1000:.1f} ms"
    )


async def boundary(
    config: dict[str, Any], workers: int, think: float, lifetime: float, spread: bool
) -> str:
    container = PostgresContainer()
    container.config.from_dict(config | {"pool_size": workers, "max_lifetime": lifetime})
    async with Lifespan(container):
        engine = await container.engine()
        if not spread:
            guard_for(engine).lifetime_spread = 0.0
        _opened.clear()
        began = time.perf_counter()
        await _traffic(engine, workers, think, began + lifetime + 5.0)
    again = [t for t in _opened if t > began + lifetime / 2]
    span = (max(again) - min(again)) * 1000 if again else 0.0
    return (
        f"lifetime {lifetime:g} s, spread {'2.5%' if spread else 'off '}: {len(again):>2} "
        f"reconnected; at most {_peak(again, 0.1):>2} in 100 ms, {_peak(again, 1.0):>2} in "
        f"1 s; first to last {span:.0f} ms"
    )


async def main(workers: int, lifetime: float, think: float) -> None:
    event.listen(Pool, "connect", _on_connect)
    async with run_state() as run:
        config = run.config()["postgres"]
        for min_idle in (0, workers):
            print(await start_up(config, workers, think, min_idle), flush=True)
        for spread in (False, True):
            print(await boundary(config, workers, think, lifetime, spread), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10, help="callers and pool_size")
    parser.add_argument("--lifetime", type=float, default=60.0, help="max_lifetime, seconds")
    parser.add_argument("--think", type=float, default=0.005, help="pause between calls, s")
    args = parser.parse_args()
    asyncio.run(main(args.workers, args.lifetime, args.think))
