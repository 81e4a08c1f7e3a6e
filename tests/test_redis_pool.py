"""The Redis client's pool: hiredis by default, and callers wait (bounded) for a
connection rather than failing when all are in use."""

import asyncio

import pytest
from redis.asyncio.connection import _AsyncHiredisParser
from redis.exceptions import ConnectionError

from blockmon.redis.client import WaitingConnectionPool, create_client


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
