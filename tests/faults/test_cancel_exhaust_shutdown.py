"""Cancellation of in-flight work, pool exhaustion, added latency, and shutdown while a
database is blackholed: nothing is left checked out, open or running afterwards."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psutil
import pytest
from sqlalchemy import exc, text

from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.testing.proxy import FaultProxy, Mode
from blockmon.testing.servers import PostgresServer, RedisServer
from faults.clients import monitored, pg_config, postgres, queue_pool, redis, redis_config
from faults.load import Recorder
from faults.test_postgres_faults import eventually, server_connections


async def redis_server_connections(client: Any, name: str) -> int:
    return sum(1 for entry in await client.client_list() if entry.get("name") == name)


async def cancel_all(tasks: list[asyncio.Task[Any]], after: float) -> None:
    await asyncio.sleep(after)
    for task in tasks:
        task.cancel()
    _done, pending = await asyncio.wait(tasks, timeout=30)
    assert not pending, f"{len(pending)} tasks ignored cancellation"


async def test_cancelling_hundreds_of_queries_leaves_nothing_checked_out(
    pg_server: PostgresServer,
) -> None:
    config = pg_config(pg_server.port, pool_size=10, max_overflow=10)
    name = config["application_name"]
    async with postgres(config) as handles:
        engine = handles.engine

        async def query(seconds: float) -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})

        await asyncio.gather(*(query(0.01) for _ in range(20)))
        baseline = await server_connections(pg_server.port, name)
        assert baseline == queue_pool(engine).checkedin()

        tasks = [asyncio.create_task(query(1.0)) for _ in range(300)]
        await cancel_all(tasks, after=0.3)

        assert queue_pool(engine).checkedout() == 0
        # Every session the server still holds is one the pool holds (cancelled ones are
        # discarded and reopened on demand): none leaked, the count is back to baseline or below.
        settled = await eventually(
            lambda: _at_most(server_connections(pg_server.port, name), baseline), 15
        )
        assert settled, (await server_connections(pg_server.port, name), engine.pool.status())
        await asyncio.gather(*(query(0.01) for _ in range(20)))  # and the pool still works
        assert (
            await server_connections(pg_server.port, name)
            == queue_pool(engine).checkedin()
            <= baseline
        )
    assert await eventually(lambda: _matches(server_connections(pg_server.port, name), 0), 10)


async def _at_most(count: Any, limit: int) -> bool:
    return bool(await count <= limit)


async def _matches(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def test_cancelling_hundreds_of_redis_commands_leaves_nothing_in_use(
    redis_proxy: FaultProxy, redis_server: RedisServer
) -> None:
    config = redis_config(redis_proxy.port, max_connections=20, retries=0)
    name = config["client_name"]
    async with redis(config) as handles:
        client = handles.client
        pool = client.connection_pool
        await asyncio.gather(*(client.ping() for _ in range(20)))
        redis_proxy.latency = 0.3

        async def get(key: str) -> object:
            return await client.get(key)

        tasks = [asyncio.create_task(get(f"k{n}")) for n in range(300)]
        await cancel_all(tasks, after=0.1)
        redis_proxy.latency = 0.0
        assert len(pool._in_use_connections) == 0
        # Cancelled connections are disconnected and reconnect on demand; the server holds
        # exactly the ones still connected (client_list itself borrows one of them).
        await asyncio.gather(*(client.ping() for _ in range(5)))
        connected = sum(1 for conn in pool._available_connections if conn.is_connected)
        assert connected <= 20
        assert await eventually(
            lambda: _matches(redis_server_connections(client, name), connected), 10
        ), (await redis_server_connections(client, name), connected)


async def test_postgres_pool_exhaustion_waits_pool_timeout_then_clear_error(
    pg_server: PostgresServer, redis_server: RedisServer
) -> None:
    config = pg_config(pg_server.port, pool_size=2, max_overflow=0, pool_timeout=1.0)
    async with monitored(config, redis_config(redis_server.port)) as handles:
        engine = handles.engine
        waiting: list[float] = []

        async def hold() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(1.8)"))

        async def watch() -> None:  # what a scrape would have seen while they wait
            await asyncio.sleep(0.3)
            waiting.append(handles.sample("postgres_connections_waiting"))

        recorder = Recorder()
        await asyncio.wait_for(
            asyncio.gather(*(recorder.run("hold", n, hold) for n in range(20)), watch()), 30
        )
        failed = recorder.failed()
        assert len(failed) == 18, recorder.error_types()
        assert all(isinstance(op.error, exc.TimeoutError) for op in failed)
        assert all("limit of size 2 overflow 0 reached" in str(op.error) for op in failed)
        assert all(1.0 <= op.duration <= 1.0 + 5.0 for op in failed)
        assert queue_pool(engine).checkedout() == 0
        assert len(waiting) == 1 and 1 <= waiting[0] <= 18, waiting
        assert handles.sample("postgres_connections_waiting") == 0
        assert handles.sample("postgres_connection_acquire_timeouts_total") == 18
        assert handles.sample("postgres_errors_total", type="pool_timeout") == 18


async def test_postgres_latency_within_timeouts_succeeds(
    pg_proxy: FaultProxy, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The latency shows in the query histogram and, above the threshold, in the
    slow-query log (engine path: SQLAlchemy's cursor events)."""
    caplog.set_level(logging.WARNING, logger="blockmon.postgres.slow")
    config = pg_config(pg_proxy.port, pool_size=5, max_overflow=5)
    rd = redis_config(redis_server.port)
    async with monitored(config, rd, slow_query_threshold=0.3) as handles:
        engine = handles.engine

        async def query() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await query()
        pg_proxy.latency = 0.2
        recorder = Recorder()
        await asyncio.wait_for(
            asyncio.gather(*(recorder.run("q", n, query) for n in range(20))), 60
        )
        assert not recorder.failed(), recorder.error_types()
        assert min(op.duration for op in recorder.ops) >= 0.4  # at least one round trip, delayed
        # Every SELECT 1 since the latency came took at least one delayed round trip.
        count = handles.sample("postgres_query_duration_seconds_count", operation="select")
        fast = handles.sample(
            "postgres_query_duration_seconds_bucket", operation="select", le="0.25"
        )
        total = handles.sample("postgres_query_duration_seconds_sum", operation="select")
        assert count == 21 and fast == 1, (count, fast)
        assert total >= 20 * 0.4
        slow = [r.msg for r in caplog.records if r.name == "blockmon.postgres.slow"]
        assert len(slow) == 20, slow
        assert all(isinstance(m, dict) and m.get("sql") == "SELECT 1" for m in slow), slow[:1]
        assert all(m["duration_ms"] >= 400 and m["threshold_ms"] == 300 for m in slow)


def sockets_to(port: int) -> int:
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )


async def test_shutdown_while_blackholed_is_bounded_and_leaks_nothing(
    pg_proxy: FaultProxy, redis_proxy: FaultProxy
) -> None:
    container = ApplicationContainer()
    container.config.from_dict(
        {
            "postgres": pg_config(pg_proxy.port, pool_size=5, max_overflow=0),
            "redis": redis_config(redis_proxy.port),
        }
    )
    lifespan = Lifespan(container)
    await lifespan.__aenter__()
    try:
        engine = await container.postgres.engine()
        cache = await container.redis.cache()

        async def query() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(0.05)"))

        await asyncio.gather(
            *(query() for _ in range(5)), *(cache.set(f"k{n}", n) for n in range(10))
        )
        assert sockets_to(pg_proxy.port) == 5
        pg_proxy.mode = redis_proxy.mode = Mode.BLACKHOLE
    finally:
        started = time.monotonic()
        await asyncio.wait_for(lifespan.__aexit__(None, None, None), 30)
        took = time.monotonic() - started
    # close_timeout (2 s) once for PostgreSQL, socket_connect_timeout (1 s) for Redis, slack.
    assert took <= 2.0 + 1.0 + 5.0, took
    assert sockets_to(pg_proxy.port) == 0
    assert sockets_to(redis_proxy.port) == 0


async def test_shutdown_while_healthy_closes_gracefully(pg_server: PostgresServer) -> None:
    config = pg_config(pg_server.port, pool_size=5, max_overflow=0)
    async with postgres(config) as handles:
        engine = handles.engine
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    assert await eventually(
        lambda: _matches(server_connections(pg_server.port, config["application_name"]), 0), 10
    )


async def test_cancelling_queries_on_a_blackholed_network_is_bounded(
    pg_proxy: FaultProxy,
) -> None:
    """asyncpg's cancellation can hang on a dead network (asyncpg #1326): here every
    cancelled task ends within SQLAlchemy's 2 s graceful close of the discarded
    connection, and nothing stays checked out."""
    config = pg_config(pg_proxy.port, pool_size=10, max_overflow=0)
    async with postgres(config) as handles:
        engine = handles.engine

        async def query() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.gather(*(query() for _ in range(10)))
        pg_proxy.mode = Mode.BLACKHOLE
        tasks = [asyncio.create_task(query()) for _ in range(100)]
        started = time.monotonic()
        await cancel_all(tasks, after=0.3)
        assert time.monotonic() - started <= 0.3 + 2.0 + 5.0
        assert queue_pool(engine).checkedout() == 0
        pg_proxy.mode = Mode.PASS
        await query()
