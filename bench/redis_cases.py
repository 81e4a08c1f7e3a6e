"""Redis cases: GET and SET of 100-byte values, one by one and in pipelines of 100,
through raw redis.asyncio (hiredis) and blockmon's client and cache."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from itertools import cycle
from typing import Any

from harness import Case, Variant
from redis.asyncio import Redis
from run_state import REDIS_KEYS, VALUE, RunState

from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.redis.client import pool_kwargs

TASKS = (1, 32)
DRIVER_SETTINGS = ("socket_timeout", "socket_connect_timeout", "retry", "health_check_interval")
BATCH = 100
NAMES = [f"k{i}" for i in range(REDIS_KEYS)]
# Drawn once, then cycled: a random draw per call costs a varying number of Python calls.
_DRAW = random.Random(1)
_NAMES = cycle(_DRAW.sample(NAMES, REDIS_KEYS))
_BATCHES = cycle([_DRAW.sample(NAMES, BATCH) for _ in range(64)])


async def parser_name(client: Redis) -> str:
    """The reply parser a client's connections use (hiredis or the pure-Python one)."""
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        return type(conn._parser).__name__
    finally:
        await pool.release(conn)


def client_ops(client: Redis, prefix: str) -> dict[str, Any]:
    async def get() -> Any:
        return await client.get(prefix + next(_NAMES))

    async def set_() -> Any:
        return await client.set(prefix + next(_NAMES), VALUE)

    async def get_batch() -> Any:
        async with client.pipeline(transaction=False) as pipe:
            for name in next(_BATCHES):
                pipe.get(prefix + name)
            return await pipe.execute()

    async def set_batch() -> Any:
        async with client.pipeline(transaction=False) as pipe:
            for name in next(_BATCHES):
                pipe.set(prefix + name, VALUE)
            return await pipe.execute()

    return {"get": get, "set": set_, "get_batch": get_batch, "set_batch": set_batch}


def cache_ops(cache: Any) -> dict[str, Any]:
    async def get() -> Any:
        return await cache.get(next(_NAMES))

    async def set_() -> Any:
        return await cache.set(next(_NAMES), VALUE)

    async def get_batch() -> Any:
        return await cache.get_many(next(_BATCHES))

    async def set_batch() -> Any:
        return await cache.set_many(dict.fromkeys(next(_BATCHES), VALUE))

    return {"get": get, "set": set_, "get_batch": get_batch, "set_batch": set_batch}


WORKLOADS = {"get": "GET 100 B", "set": "SET 100 B"}
STACKS = ("redis.asyncio", "blockmon client", "blockmon cache")
PIPELINED = {name: f"{name} x{BATCH}" for name in STACKS}  # variant names of the batches


@asynccontextmanager
async def stacks(run: RunState, notes: list[str]) -> AsyncIterator[list[Case]]:
    async with AsyncExitStack() as stack:
        redis = run.settings.redis
        # blockmon's driver settings (timeouts, retry, health_check_interval) on the raw
        # client too, so the ratios isolate blockmon's layer (pool, metrics, cache).
        driver = {k: v for k, v in pool_kwargs(redis).items() if k in DRIVER_SETTINGS}
        raw = Redis(host=redis.host, port=redis.port, db=redis.db, **driver)
        stack.push_async_callback(raw.aclose)
        app = ApplicationContainer()
        app.config.from_dict(run.config())
        await stack.enter_async_context(Lifespan(app))
        client = await app.redis.client()
        cache = await app.redis.cache()
        await cache.set_many(dict.fromkeys(NAMES, VALUE))
        notes.append(
            f"redis parsers: raw {await parser_name(raw)}, blockmon {await parser_name(client)}"
        )
        ops = {
            "redis.asyncio": client_ops(raw, run.prefix),
            "blockmon client": client_ops(client, run.prefix),
            "blockmon cache": cache_ops(cache),
        }
        pipelined = [  # a throughput target: twice the rounds, two variants
            Case(
                f"pipeline.{work}.{tasks}",
                f"pipelining, {title}, {tasks} task{'s' * (tasks > 1)}",
                tasks,
                [
                    Variant("blockmon cache", ops["blockmon cache"][work]),
                    Variant(
                        "blockmon cache x100", ops["blockmon cache"][f"{work}_batch"], per_op=BATCH
                    ),
                ],
                unit="keys/s",
                rounds_factor=3,
            )
            for tasks in TASKS
            for work, title in WORKLOADS.items()
        ]
        yield [
            Case(
                f"redis.{work}.{tasks}",
                f"{title}, {tasks} task{'s' * (tasks > 1)}",
                tasks,
                [Variant(name, ops[name][work]) for name in STACKS]
                + [
                    Variant(PIPELINED[name], ops[name][f"{work}_batch"], per_op=BATCH)
                    for name in STACKS
                ],
                unit="keys/s",
            )
            for tasks in TASKS
            for work, title in WORKLOADS.items()
        ] + pipelined
