"""Issue 23, item 1, for Redis: the client Resource's shutdown waits for the commands in
flight (up to ``redis.shutdown_timeout``), then closes; every call after it fails at once
with `RedisShutDown` (a BlockmonError) instead of connecting again behind the
application's back, and no connection of ours stays open. Against the real server, in
every topology."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import eventually, redis_clients, settings_of, unique, with_names

from blockmon.containers import ApplicationContainer, RedisContainer
from blockmon.errors import BlockmonError
from blockmon.lifespan import Lifespan
from blockmon.redis.client import create_client
from blockmon.redis.shutdown import RedisShutDown
from blockmon.testing.servers import ClusterDeployment, SentinelDeployment
from tests.test_redis_topologies import cluster_config, sentinel_config


async def refused_everywhere(client: Any) -> None:
    """A command, a pipeline and (outside cluster mode) a subscription: each fails at once
    with the one blockmon error."""
    with pytest.raises(RedisShutDown, match="redis: the client was shut down") as failed:
        await client.ping()
    assert isinstance(failed.value, BlockmonError)
    with pytest.raises(RedisShutDown):
        await client.set("bm:shutdown", "1")
    with pytest.raises(RedisShutDown):
        async with client.pipeline() as pipe:
            await pipe.get("bm:shutdown").get("bm:other").execute()
    if hasattr(client, "pubsub") and hasattr(client, "connection_pool"):
        pubsub = client.pubsub()
        try:
            with pytest.raises(RedisShutDown):
                await pubsub.subscribe("bm:shutdown")
        finally:
            await pubsub.aclose()


async def blpops(observer: Any, name: str) -> list[str]:
    """The ids of ``name``'s connections blocked in BLPOP."""
    listing = await observer.client_list()
    return [e["id"] for e in listing if e.get("name") == name and e.get("cmd") == "blpop"]


async def test_shutdown_waits_for_a_command_in_flight_then_refuses_every_call(
    blockmon_config: dict[str, Any],
) -> None:
    name = unique("bm_rsd")
    config = with_names(blockmon_config, name)
    config["redis"]["shutdown_timeout"] = 30
    settings = settings_of(config)
    observer = create_client(settings.redis.model_copy(update={"client_name": "bm_observer"}))
    container = ApplicationContainer()
    container.config.from_dict(config)
    key = unique("bm:rsd")
    try:
        async with Lifespan(container):
            client = await container.redis.client()
            await client.ping()
            # in flight across the shutdown: answered once the observer pushes a value
            waiting = asyncio.ensure_future(client.blpop([key], timeout=20))

            async def blocked() -> bool:
                listing = await observer.client_list()
                return any(e.get("name") == name and e.get("cmd") == "blpop" for e in listing)

            assert await eventually(blocked), "the BLPOP never reached the server"

            async def answer_later() -> None:
                await asyncio.sleep(0.3)
                await observer.rpush(key, "done")

            pusher = asyncio.ensure_future(answer_later())
        # the Lifespan ended only after the command in flight was answered
        assert waiting.done() and waiting.result() == (key.encode(), b"done")
        await pusher
        await refused_everywhere(client)

        async def gone() -> bool:
            return await redis_clients(observer, name) == 0

        assert await eventually(gone), "a Redis connection of ours outlived shutdown"
        # no pool was rebuilt by the refused calls
        assert await redis_clients(observer, name) == 0
    finally:
        await observer.delete(key)
        await observer.aclose()


async def test_a_command_still_out_after_the_timeout_is_closed_when_it_comes_back(
    blockmon_config: dict[str, Any],
) -> None:
    name = unique("bm_rsd")
    config = with_names(blockmon_config, name)
    config["redis"]["shutdown_timeout"] = 0.2
    settings = settings_of(config)
    observer = create_client(settings.redis.model_copy(update={"client_name": "bm_observer"}))
    container = ApplicationContainer()
    container.config.from_dict(config)
    key = unique("bm:rsd")
    try:
        async with Lifespan(container):
            client = await container.redis.client()
            waiting = asyncio.ensure_future(client.blpop([key], timeout=20))

            async def blocked() -> bool:
                listing = await observer.client_list()
                return any(e.get("name") == name and e.get("cmd") == "blpop" for e in listing)

            assert await eventually(blocked), "the BLPOP never reached the server"
            (before,) = await blpops(observer, name)
        assert not waiting.done()  # shutdown stopped waiting after its timeout
        await refused_everywhere(client)
        # the one in flight only, on its own connection still (not cut and sent again)
        assert await redis_clients(observer, name) == 1
        assert await blpops(observer, name) == [before]
        await observer.rpush(key, "late")
        assert await asyncio.wait_for(waiting, 30) == (key.encode(), b"late")

        async def gone() -> bool:
            return await redis_clients(observer, name) == 0

        assert await eventually(gone), "the connection in flight was kept after shutdown"
    finally:
        await observer.delete(key)
        await observer.aclose()


async def test_sentinel_mode_refuses_after_shutdown(redis_sentinel: SentinelDeployment) -> None:
    container = RedisContainer()
    container.config.from_dict(sentinel_config(redis_sentinel))
    await container.init_resources()
    try:
        client = await container.client()
        await client.ping()
    finally:
        await container.shutdown_resources()
    await refused_everywhere(client)


async def test_cluster_mode_refuses_after_shutdown(redis_cluster: ClusterDeployment) -> None:
    container = RedisContainer()
    container.config.from_dict(cluster_config(redis_cluster))
    await container.init_resources()
    try:
        client = await container.client()
        await client.ping()
    finally:
        await container.shutdown_resources()
    await refused_everywhere(client)
