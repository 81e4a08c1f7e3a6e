"""pytest fixtures for applications built on blockmon (and for blockmon itself).

Enable with ``pytest_plugins = ["blockmon.testing"]`` in a conftest. Each test run
gets its own database (created, then dropped) and its own Redis key prefix (its keys
deleted at the end); each test gets a fresh container. Servers come from the usual
configuration (config.yml, BLOCKMON_CONFIG, DATABASE_URL, REDIS_URL); when none
answers, embedded ones are started, so the suite also runs on a bare machine.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.file import load_settings
from blockmon.config.settings import PostgresSettings, Settings
from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.provisioning.embedded import EmbeddedServers
from blockmon.provisioning.servers import connect, resolve_servers, with_database
from blockmon.redis.cache import Cache

_counter = itertools.count()


async def create_database(settings: PostgresSettings, name: str) -> PostgresSettings:
    conn = await connect(settings, database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(settings, name)


async def drop_database(settings: PostgresSettings, name: str) -> None:
    conn = await connect(settings, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_keys(settings: Settings, prefix: str) -> int:
    """Delete every key under ``prefix`` (SCAN, never FLUSHDB)."""
    from blockmon.redis.client import create_client

    client = create_client(settings.redis)
    deleted = 0
    try:
        async for batch in _batches(client.scan_iter(match=f"{prefix}*", count=500), 500):
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted


async def _batches(items: Any, size: int) -> AsyncIterator[list[Any]]:
    batch: list[Any] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@pytest.fixture(scope="session")
def blockmon_settings() -> Iterator[Settings]:
    """Settings for this test run: its own database and its own Redis key prefix."""
    run_id = secrets.token_hex(4)
    servers = EmbeddedServers(home=Path(tempfile.mkdtemp(prefix="blockmon-embedded-")))
    try:  # the embedded servers and their folder go, also on failure or Ctrl-C
        base = asyncio.run(resolve_servers(load_settings(), servers=servers))
        name = f"blockmon_test_{run_id}"
        pg = asyncio.run(create_database(base.postgres, name))
        redis = base.redis.model_copy(update={"key_prefix": f"blockmon-test:{run_id}:"})
        settings = base.model_copy(update={"postgres": pg, "redis": redis})
        try:
            yield settings
        finally:
            try:
                asyncio.run(drop_database(base.postgres, name))
            finally:
                asyncio.run(delete_keys(settings, redis.key_prefix))
    finally:
        servers.stop()
        shutil.rmtree(servers.home, ignore_errors=True)


@pytest.fixture
def blockmon_config(blockmon_settings: Settings) -> dict[str, Any]:
    """A configuration mapping for one test, with a key prefix of its own."""
    data = blockmon_settings.model_dump()
    data["redis"]["key_prefix"] = f"{blockmon_settings.redis.key_prefix}{next(_counter)}:"
    return data


@pytest_asyncio.fixture
async def blockmon_container(
    blockmon_config: dict[str, Any],
) -> AsyncIterator[ApplicationContainer]:
    """A fresh ApplicationContainer with its Resources started; shut down after the test."""
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    async with Lifespan(container):
        yield container


@pytest_asyncio.fixture
async def blockmon_engine(blockmon_container: ApplicationContainer) -> AsyncEngine:
    engine: AsyncEngine = await blockmon_container.postgres.engine()
    return engine


@pytest_asyncio.fixture
async def blockmon_redis(blockmon_container: ApplicationContainer) -> Redis:
    client: Redis = await blockmon_container.redis.client()
    return client


@pytest_asyncio.fixture
async def blockmon_cache(blockmon_container: ApplicationContainer) -> Cache:
    cache: Cache = await blockmon_container.redis.cache()
    return cache


@pytest_asyncio.fixture
async def blockmon_fresh_database(blockmon_settings: Settings) -> AsyncIterator[PostgresSettings]:
    """A database of its own for one test (for migrations and schema tests)."""
    name = f"bm_{secrets.token_hex(6)}"
    settings = await create_database(blockmon_settings.postgres, name)
    try:
        yield settings
    finally:
        await drop_database(blockmon_settings.postgres, name)
