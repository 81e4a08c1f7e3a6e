"""The Redis client's pool: hiredis by default, and callers wait (bounded) for a
connection rather than failing when all are in use."""

import asyncio
import json

import pytest
from redis.asyncio.connection import _AsyncHiredisParser
from redis.exceptions import ConnectionError
from support import captured_logs

from blockmon._compat import redis as redis_compat
from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.redis.client import PoolTimeout, WaitingConnectionPool, create_client


async def test_client_parses_replies_with_hiredis(blockmon_redis):
    pool = blockmon_redis.connection_pool
    assert isinstance(pool, WaitingConnectionPool)
    connection = await pool.get_connection()
    try:
        assert isinstance(connection._parser, _AsyncHiredisParser)
    finally:
        await pool.release(connection)


async def test_callers_wait_for_a_free_connection(blockmon_settings):
    settings = blockmon_settings.redis.model_copy(update={"max_connections": 1, "pool_timeout": 5})
    client = create_client(settings)
    try:
        pool = client.connection_pool
        held = await pool.get_connection()
        waiter = asyncio.create_task(client.ping())
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await pool.release(held)
        assert await asyncio.wait_for(waiter, 10) is True
        assert len(pool._in_use_connections) == 0
    finally:
        await client.aclose()


async def test_a_wait_is_bounded_by_pool_timeout(blockmon_settings):
    settings = blockmon_settings.redis.model_copy(
        update={"max_connections": 1, "pool_timeout": 0.2, "retries": 0}
    )
    client = create_client(settings)
    try:
        pool = client.connection_pool
        held = await pool.get_connection()
        with pytest.raises(ConnectionError, match="No connection available"):
            await asyncio.wait_for(client.ping(), 10)
        await pool.release(held)
        assert await asyncio.wait_for(client.ping(), 10) is True
    finally:
        await client.aclose()


async def test_a_busy_caller_does_not_starve_a_queued_one(blockmon_settings):
    """A caller that keeps releasing and re-taking the only connection must not jump
    ahead of a caller already queued for it."""
    settings = blockmon_settings.redis.model_copy(
        update={"max_connections": 1, "pool_timeout": 2, "retries": 0}
    )
    client = create_client(settings)
    stop = asyncio.Event()

    async def busy() -> int:
        done = 0
        while not stop.is_set():
            await client.get(f"{settings.key_prefix}busy")
            done += 1
        return done

    try:
        hog = asyncio.create_task(busy())
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(client.ping(), 10) is True  # was: "No connection available."
        stop.set()
        assert await asyncio.wait_for(hog, 10) > 0
    finally:
        stop.set()
        await client.aclose()


@pytest.mark.parametrize("path", ["fast", "fallback"])
async def test_an_exhausted_pool_is_no_lost_connection(blockmon_config, monkeypatch, path):
    """A caller that found no free connection within ``redis.pool_timeout`` gets a
    ConnectionError naming the two settings; the metrics count it as
    ``redis_errors_total{type="pool_timeout"}`` and the log says nothing of a lost
    connection (the server was fine all along). The same on redis-py's own pool, the
    public fallback (before, a "connection" error there)."""
    monkeypatch.setattr(redis_compat.LAYOUT, "checked", None if path == "fast" else False)
    blockmon_config["redis"].update(max_connections=1, pool_timeout=0.2, retries=0)
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    with captured_logs("info") as stream:
        async with Lifespan(container):
            client = await container.redis.client()
            assert await client.ping() is True
            pool = client.connection_pool
            held = await pool.get_connection()
            with pytest.raises(ConnectionError) as caught:
                await asyncio.wait_for(client.ping(), 10)
            await pool.release(held)
            assert await asyncio.wait_for(client.ping(), 10) is True
            registry = container.monitoring.registry()
            timeouts = registry.get_sample_value("redis_errors_total", {"type": "pool_timeout"})
            lost = registry.get_sample_value("redis_errors_total", {"type": "connection"})
    assert isinstance(caught.value, PoolTimeout)
    assert str(caught.value) == (
        "No connection available: all 1 in use for 0.2 s "
        "(redis.max_connections, redis.pool_timeout)"
    )
    assert timeouts == 1
    assert not lost
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines() if line]
    assert not [e for e in events if "connection lost" in e or "reconnected" in e], events
