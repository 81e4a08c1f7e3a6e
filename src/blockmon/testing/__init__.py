"""pytest fixtures for applications built on blockmon (and for blockmon itself).

Enable with ``pytest_plugins = ["blockmon.testing"]`` in a conftest. Each test run
gets its own database (created, then dropped) and its own Redis key prefix (its keys
deleted at the end); each test gets a fresh container. Servers come from the usual
configuration (config.yml, BLOCKMON_CONFIG, DATABASE_URL, REDIS_URL); when none
answers, embedded ones are started, so the suite also runs on a bare machine.

``blockmon_alembic_config = alembic.ini`` in the pytest ini file migrates the per-run
database (the application's chain; first blockmon's alerting tables when
``migrations.alerting_tables`` is on) before the first test, and makes that file the
settings' ``migrations.heads_from``, so the health check compares that chain.
``blockmon_unit_container`` needs no server at all: its ``redis.client`` is a fakeredis
client and nothing is started (PostgreSQL is never faked; SQL needs the real database).
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
from dependency_injector import providers
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.file import load_settings
from blockmon.config.settings import PostgresSettings, Settings
from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.postgres.engine import create_engine
from blockmon.postgres.sessions import Sessions
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


ALEMBIC_INI_OPTION = "blockmon_alembic_config"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        ALEMBIC_INI_OPTION,
        "the application's alembic.ini (relative to the rootdir): its migrations (and "
        "blockmon's alerting tables when migrations.alerting_tables asks for them) are "
        "applied to the per-run database before the first test",
        default="",
    )


@pytest.fixture(scope="session")
def blockmon_settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
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
            ini = str(request.config.getini(ALEMBIC_INI_OPTION))
            if ini:
                heads_from = str(request.config.rootpath / ini)
                migrations = settings.migrations.model_copy(update={"heads_from": heads_from})
                settings = settings.model_copy(update={"migrations": migrations})
                asyncio.run(migrate(settings))
            yield settings
        finally:
            try:
                asyncio.run(drop_database(base.postgres, name))
            finally:
                asyncio.run(delete_keys(settings, redis.key_prefix))
    finally:
        servers.stop()
        shutil.rmtree(servers.home, ignore_errors=True)


async def migrate(settings: Settings) -> None:
    """Every chain the settings name to head (`blockmon.migrations.api.configured_chains`)."""
    from blockmon.migrations.api import configured_chains, upgrade

    engine = create_engine(settings.postgres)
    try:
        for config in configured_chains(settings.migrations):
            await upgrade(engine, config=config, settings=settings.migrations)
    finally:
        await engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    """A wrong ``blockmon_alembic_config`` stops the run before any test, in one line."""
    ini = str(config.getini(ALEMBIC_INI_OPTION))
    if not ini:
        return
    from blockmon.config.alembic_ini import read_chain

    try:
        read_chain(str(config.rootpath / ini))
    except ValueError as error:
        raise pytest.UsageError(f"{ALEMBIC_INI_OPTION}: {error}") from None


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
async def blockmon_rollback(
    blockmon_container: ApplicationContainer,
) -> AsyncIterator[Sessions]:
    """Database tests that leave nothing behind without deleting rows: the container's
    ``postgres.sessions`` (what ``blockmon.fastapi``'s and ``blockmon.litestar``'s
    sessions come from) join one outer transaction, rolled back after the test; a
    route's commit ends a savepoint (SQLAlchemy's "join a session into an external
    transaction"). A read session opens no savepoint and leaves the transaction as it
    found it: rolled back to a savepoint of its own, it would undo a write session's work
    opened after it in the same request. One connection: the test's requests run one at
    a time."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from blockmon.containers import bound

    engine: AsyncEngine = await blockmon_container.postgres.engine()
    async with engine.connect() as conn:
        outer = await conn.begin()
        factory = async_sessionmaker(
            bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        reads = async_sessionmaker(
            bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only"
        )
        joined = Sessions(factory, read_factory=reads)  # reads see the test's writes
        with blockmon_container.postgres.sessions.override(
            providers.Resource(bound, lambda: joined)
        ):
            try:
                yield joined
            finally:
                await outer.rollback()


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


@pytest.fixture
def blockmon_fake_redis() -> Iterator[Any]:
    """A fakeredis ``FakeAsyncRedis``, in memory, new for each test (needs ``fakeredis``)."""
    import fakeredis

    yield fakeredis.FakeAsyncRedis()


def use_fake_redis(container: Any, client: Any) -> None:
    """Make ``container.redis.client`` (any blockmon container, or one holding it as
    ``blockmon``) give ``client``; still an async Resource, so ``await`` keeps working.
    Undo with ``container.redis.client.reset_override()``."""

    async def resource() -> AsyncIterator[Any]:
        yield client

    blockmon = container.blockmon if "blockmon" in container.providers else container
    blockmon.redis.client.override(providers.Resource(resource))


@pytest_asyncio.fixture
async def blockmon_unit_container(
    blockmon_fake_redis: Any,
) -> AsyncIterator[ApplicationContainer]:
    """An ApplicationContainer for unit tests without servers: ``redis.client`` (and so
    ``redis.cache``) is ``blockmon_fake_redis``; nothing is started. PostgreSQL is not
    faked: a test that runs SQL uses ``blockmon_container`` and the per-run database."""
    container = ApplicationContainer()
    container.config.from_dict({})
    use_fake_redis(container, blockmon_fake_redis)
    try:
        yield container
    finally:
        # None when the test initialised no Resource (dependency-injector returns an
        # awaitable only when an async one was started).
        stopped: Any = container.shutdown_resources()
        if stopped is not None:
            await stopped
        container.redis.client.reset_override()
