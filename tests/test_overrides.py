"""Overriding providers in tests: an engine, a whole sub-container; and a fresh
container per test with nothing leaking from one test to the next."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from dependency_injector import providers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.settings import PostgresSettings
from blockmon.containers import ApplicationContainer, RedisContainer
from blockmon.lifespan import Lifespan
from blockmon.postgres.engine import create_engine
from blockmon.redis.cache import Cache

_seen_containers: set[int] = set()


async def _test_engine(settings: PostgresSettings) -> AsyncIterator[AsyncEngine]:
    """An async Resource, so the overridden provider stays async (dependency-injector #545)."""
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_overridden_engine_is_used_by_its_dependants(blockmon_config: dict[str, Any]) -> None:
    test_settings = PostgresSettings.model_validate(
        {**blockmon_config["postgres"], "application_name": "bm_test_engine", "pool_size": 1}
    )
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    container.postgres.engine.override(providers.Resource(_test_engine, test_settings))
    async with Lifespan(container):
        engine = await container.postgres.engine()
        assert engine.sync_engine.pool.size() == 1
        statements = await container.postgres.statements()
        assert await statements.scalar("SHOW application_name") == "bm_test_engine"
        async with (await container.postgres.transactions()).transaction() as session:
            name = (await session.execute(text("SHOW application_name"))).scalar()
        assert name == "bm_test_engine"
        async with (await container.postgres.session_factory())() as session:
            assert session.bind is engine


async def test_override_a_whole_sub_container(blockmon_config: dict[str, Any]) -> None:
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    replacement = RedisContainer()
    replacement.config.from_dict(
        {**blockmon_config["redis"], "key_prefix": blockmon_config["redis"]["key_prefix"] + "alt:"}
    )
    container.redis.override(replacement)
    async with Lifespan(container):
        cache: Cache = await container.redis.cache()
        assert cache.prefix.endswith("alt:")
        await cache.set("k", "v", ttl=30)
        assert await cache.client.get(blockmon_config["redis"]["key_prefix"] + "alt:k") == b"v"
        await cache.delete("k")
    container.redis.reset_override()
    assert container.redis.cache.args[0] is Cache  # the Resource over the original client


@pytest.mark.parametrize("run", [1, 2])
async def test_fresh_container_per_test(blockmon_container: ApplicationContainer, run: int) -> None:
    """Run twice: each run must see a container, a key prefix and an engine of its own."""
    assert id(blockmon_container) not in _seen_containers
    _seen_containers.add(id(blockmon_container))
    cache: Cache = await blockmon_container.redis.cache()
    assert await cache.get("leak-probe") is None, "a key from another test leaked in"
    await cache.set("leak-probe", str(run), ttl=60)
    engine: AsyncEngine = await blockmon_container.postgres.engine()
    async with engine.connect() as conn:
        # the engine's pool belongs to this test's event loop: a reused one would fail here
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        await conn.execute(text("CREATE TEMP TABLE probe (x int)"))
