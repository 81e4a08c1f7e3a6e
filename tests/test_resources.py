"""The PostgreSQL and Redis Resources against the real servers: start, use, shut down,
and nothing of ours stays connected afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

from dependency_injector.providers import Resource
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from support import eventually, pg_backends, redis_clients, settings_of, unique, with_names

from blockmon.containers import ApplicationContainer
from blockmon.errors import ConfigError
from blockmon.lifespan import Lifespan
from blockmon.redis.client import create_client


async def test_resources_init_use_and_leave_no_connection(blockmon_config: dict[str, Any]) -> None:
    name = unique("bm_res")
    config = with_names(blockmon_config, name)
    settings = settings_of(config)
    observer = create_client(settings.redis.model_copy(update={"client_name": "bm_observer"}))
    container = ApplicationContainer()
    container.config.from_dict(config)
    try:
        async with Lifespan(container):
            engine = await container.postgres.engine()
            client = await container.redis.client()
            assert isinstance(engine, AsyncEngine)
            assert isinstance(client, Redis)
            assert isinstance(await container.postgres.session_factory(), async_sessionmaker)

            async def query() -> Any:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT pg_sleep(0.05)"))
                    return (await conn.execute(text("SHOW application_name"))).scalar()

            assert await asyncio.gather(*(query() for _ in range(3))) == [name] * 3
            await asyncio.gather(*(client.ping() for _ in range(3)))
            assert await pg_backends(settings.postgres, name) >= 1
            assert await redis_clients(observer, name) >= 1

        async def pg_gone() -> bool:
            return await pg_backends(settings.postgres, name) == 0

        async def redis_gone() -> bool:
            return await redis_clients(observer, name) == 0

        assert await eventually(pg_gone), "a PostgreSQL connection of ours outlived shutdown"
        assert await eventually(redis_gone), "a Redis connection of ours outlived shutdown"
    finally:
        await observer.aclose()


async def test_error_in_the_body_still_closes_everything(blockmon_config: dict[str, Any]) -> None:
    name = unique("bm_err")
    config = with_names(blockmon_config, name)
    settings = settings_of(config)
    container = ApplicationContainer()
    container.config.from_dict(config)
    try:
        async with Lifespan(container):
            engine = await container.postgres.engine()
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            await (await container.redis.client()).ping()
            raise LookupError("boom")
    except LookupError:
        pass
    else:
        raise AssertionError("the error in the body was swallowed")

    async def pg_gone() -> bool:
        return await pg_backends(settings.postgres, name) == 0

    assert await eventually(pg_gone)
    observer = create_client(settings.redis.model_copy(update={"client_name": "bm_observer"}))
    try:

        async def redis_gone() -> bool:
            return await redis_clients(observer, name) == 0

        assert await eventually(redis_gone)
    finally:
        await observer.aclose()


async def test_a_bad_setting_stops_start_up_before_any_connection(
    blockmon_config: dict[str, Any],
) -> None:
    blockmon_config["postgres"]["pool_size"] = -3
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    try:
        async with Lifespan(container):
            raise AssertionError("started with pool_size -3")
    except ConfigError as error:
        assert str(error) == "postgres.pool_size: must be >= 1, got -3"


async def test_a_cancelled_start_up_finishes_then_shuts_everything_down(
    blockmon_config: dict[str, Any],
) -> None:
    """A signal or a stopping server cancels start-up at any step: the cancellation is
    re-raised, the loop logs no broken future, and no Resource is left started."""
    loop = asyncio.get_running_loop()
    broken: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: broken.append(context))
    try:
        for steps in range(0, 40, 3):
            container = ApplicationContainer()
            container.config.from_dict(blockmon_config)

            async def start(container: Any = container) -> None:
                async with Lifespan(container):
                    await asyncio.Event().wait()

            task = asyncio.ensure_future(start())
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.wait([task], timeout=60)
            assert task.cancelled(), f"after {steps} steps: {task}"
            started = [p for p in container.traverse(types=[Resource]) if p.initialized]
            assert started == [], f"after {steps} steps, still started: {started}"
        await asyncio.sleep(0.1)  # broken futures' callbacks run on the next iterations
        assert broken == []
    finally:
        loop.set_exception_handler(previous)
