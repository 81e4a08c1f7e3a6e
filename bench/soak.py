"""Soak: mixed PostgreSQL and Redis load with periodic faults, reporting this process's
memory (RSS) and the connections it holds over time. Neither may grow. Not run in CI.

    .venv/bin/python bench/soak.py --seconds 300 --workers 40 --every 10

It starts its own throwaway PostgreSQL and Redis (blockmon.testing.servers) behind
fault proxies (blockmon.testing.proxy) and cycles through the faults: PostgreSQL restart, Redis restart, blackhole of
each for a few seconds, added latency, and a cut of every connection.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psutil
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from blockmon.containers import PostgresContainer, RedisContainer
from blockmon.lifespan import Lifespan
from blockmon.testing.proxy import FaultProxy, Mode
from blockmon.testing.servers import PostgresServer, RedisServer

# Short but finite, so a fault shows within seconds.
PG_TIMEOUTS = {"connect_timeout": 2.0, "statement_timeout": 2.5, "command_timeout": 3.0}
REDIS_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0, "pool_timeout": 3.0}


@asynccontextmanager
async def started(container: Any, config: dict[str, Any]) -> AsyncIterator[Any]:
    """A started container (PostgresContainer or RedisContainer); shut down on exit."""
    container.config.from_dict(config)
    async with Lifespan(container):
        yield container


async def main(seconds: float, workers: int, every: float) -> int:
    with PostgresServer() as pg_server, RedisServer() as redis_server:
        async with (
            FaultProxy("127.0.0.1", pg_server.port) as pg_proxy,
            FaultProxy("127.0.0.1", redis_server.port) as redis_proxy,
            started(
                PostgresContainer(),
                pg_server.settings()
                | {"port": pg_proxy.port, "pool_size": 10, "max_overflow": 10, **PG_TIMEOUTS},
            ) as pgc,
            started(
                RedisContainer(),
                redis_server.settings() | {"port": redis_proxy.port, **REDIS_TIMEOUTS},
            ) as rc,
        ):
            engine = await pgc.engine()
            cache = await rc.cache()
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE IF NOT EXISTS soak (id bigint, v text)"))
            outcomes: Counter[str] = Counter()
            ids = itertools.count()
            stop = asyncio.Event()

            async def worker() -> None:
                while not stop.is_set():
                    n = next(ids)
                    try:
                        async with engine.begin() as conn:
                            await conn.execute(text("INSERT INTO soak VALUES (:i, 'x')"), {"i": n})
                            await conn.execute(
                                text("SELECT count(*) FROM soak WHERE id = :i"), {"i": n}
                            )
                        await cache.set(f"k{n % 1000}", n, ttl=60)
                        await cache.get(f"k{(n * 7) % 1000}")
                        outcomes["ok"] += 1
                    except Exception as error:
                        outcomes[type(error).__name__] += 1
                        await asyncio.sleep(0.05)

            async def faults() -> None:
                cycle = itertools.cycle(
                    [
                        "pg-restart",
                        "redis-restart",
                        "pg-blackhole",
                        "redis-blackhole",
                        "latency",
                        "cut",
                    ]
                )
                while not stop.is_set():
                    await asyncio.sleep(every)
                    fault = next(cycle)
                    print(f"{time.monotonic() - t0:7.1f}s fault {fault}", flush=True)
                    if fault == "pg-restart":
                        await asyncio.to_thread(pg_server.restart)
                    elif fault == "redis-restart":
                        await asyncio.to_thread(redis_server.restart)
                    elif fault in ("pg-blackhole", "redis-blackhole"):
                        proxy = pg_proxy if fault == "pg-blackhole" else redis_proxy
                        proxy.mode = Mode.BLACKHOLE
                        await asyncio.sleep(3)
                        proxy.mode = Mode.PASS
                    elif fault == "latency":
                        pg_proxy.latency = redis_proxy.latency = 0.05
                        await asyncio.sleep(3)
                        pg_proxy.latency = redis_proxy.latency = 0.0
                    else:
                        pg_proxy.cut()
                        redis_proxy.cut()

            me = psutil.Process()
            t0 = time.monotonic()
            tasks = [asyncio.create_task(worker()) for _ in range(workers)]
            tasks.append(asyncio.create_task(faults()))
            print("  time   rss_MB  pg_sessions  pg_pool  redis_conns  fds  ok_total  errors")
            samples = []
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(5)
                gc.collect()
                pool = engine.pool
                assert isinstance(pool, QueuePool)
                redis_pool = cache.client.connection_pool
                rss = me.memory_info().rss / 2**20
                sessions = pg_proxy.connections
                row = (
                    time.monotonic() - t0,
                    rss,
                    sessions,
                    pool.checkedin() + pool.checkedout(),
                    sum(count for count, _ in redis_pool.get_connection_count()),
                    me.num_fds(),
                )
                samples.append(row)
                errors = {k: v for k, v in outcomes.items() if k != "ok"}
                print(
                    f"{row[0]:6.0f}s {row[1]:8.1f} {row[2]:12d} {row[3]:8d} {row[4]:12d} {row[5]:4d}"
                    f"  {outcomes['ok']:8d}  {errors}",
                    flush=True,
                )
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            half = len(samples) // 2
            if half:
                early = max(s[1] for s in samples[:half])
                late = max(s[1] for s in samples[half:])
                print(f"RSS max first half {early:.1f} MB, second half {late:.1f} MB")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--every", type=float, default=10, help="seconds between faults")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.workers, args.every)))
