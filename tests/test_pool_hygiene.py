"""Issue 23, item 6: pool hygiene (HikariCP). Each connection's lifetime is
``max_lifetime`` less a random part of up to 2.5%, so connections opened together are not
reopened together; ``postgres.min_idle`` connections are open when start-up ends, come
back after the pool lost them, and go at shutdown. Against the run's real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import text

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.config.settings import PostgresSettings, validate
from blockmon.containers import PostgresContainer
from blockmon.errors import ConfigError
from blockmon.lifespan import Lifespan
from blockmon.postgres.engine import create_engine
from blockmon.postgres.pool import LIFETIME_SPREAD
from tests.monitoring.support import black_hole

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")

WAIT = 30.0  # seconds: a generous bound on the keeper's next look (every second)
LIFETIME = 1000.0


@pytest.mark.parametrize("sqlalchemy_path", ["fast"], indirect=True)  # no spread on the public path
async def test_connections_opened_together_get_different_lifetimes(blockmon_config):
    if not sa_compat.LAYOUT.ok():
        pytest.fail("SQLAlchemy's layout changed: the lifetime spread is off (docs/core.md)")
    settings = PostgresSettings.model_validate(
        {**blockmon_config["postgres"], "pool_size": 8, "max_lifetime": LIFETIME}
    )
    engine = create_engine(settings)
    together = asyncio.Barrier(8)  # all eight out at once: eight connections opened
    lifetimes: list[float] = []

    async def hold() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            lifetimes.append(raw.info[sa_compat._EXPIRES] - time.perf_counter())
            await together.wait()

    try:
        await asyncio.gather(*(hold() for _ in range(8)))
    finally:
        await engine.dispose()
    shortest = LIFETIME * (1 - LIFETIME_SPREAD) - 60  # a minute of slack for a slow run
    assert all(shortest <= life <= LIFETIME for life in lifetimes), lifetimes
    # eight draws over a 25 s range: all within one second of each other has a
    # probability under 1e-9
    assert max(lifetimes) - min(lifetimes) > 1.0, lifetimes


async def _sessions(observer: Any, name: str) -> int:
    async with observer.connect() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n")
        return int((await conn.execute(query, {"n": name})).scalar_one())


async def _until(observer: Any, name: str, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while (seen := await _sessions(observer, name)) != count:
        assert time.monotonic() < deadline, f"{seen} sessions, expected {count}"
        await asyncio.sleep(0.2)


async def test_min_idle_connections_are_open_after_start_up_and_kept(blockmon_config):
    name = f"bm-idle-{secrets.token_hex(4)}"
    section = {**blockmon_config["postgres"], "application_name": name}
    observer = create_engine(PostgresSettings.model_validate(section | {"application_name": "x"}))
    container = PostgresContainer()
    container.config.from_dict(section | {"pool_size": 5, "min_idle": 3})
    try:
        async with Lifespan(container):
            assert await _sessions(observer, name) == 3  # right after start-up
            engine = await container.engine()
            await engine.dispose()  # what the health check does after an outage
            assert await _sessions(observer, name) == 0
            await _until(observer, name, 3)
        await _until(observer, name, 0)  # and none left after shutdown
        async with Lifespan(container):  # start-stop-start
            assert await _sessions(observer, name) == 3
    finally:
        await observer.dispose()


async def test_without_min_idle_nothing_is_opened_at_start_up(blockmon_config):
    name = f"bm-idle-{secrets.token_hex(4)}"
    section = {**blockmon_config["postgres"], "application_name": name}
    observer = create_engine(PostgresSettings.model_validate(section | {"application_name": "x"}))
    container = PostgresContainer()
    container.config.from_dict(section)
    try:
        async with Lifespan(container):
            assert await _sessions(observer, name) == 0
    finally:
        await observer.dispose()


def test_min_idle_above_pool_size_is_one_line():
    with pytest.raises(ConfigError) as caught:
        validate(PostgresSettings, {"pool_size": 2, "min_idle": 3}, "postgres")
    assert str(caught.value) == "postgres.min_idle: must be <= postgres.pool_size (2), got 3"


async def test_min_idle_with_the_server_down_at_start_up(blockmon_config, pg_server, caplog):
    """Start-up does not fail; one warning; the connections come once the server is up."""
    caplog.set_level(logging.WARNING, logger="blockmon.postgres")
    name = f"bm-idle-{secrets.token_hex(4)}"
    section = pg_server.settings() | {"application_name": name, "connect_timeout": 1}
    observer = create_engine(PostgresSettings.model_validate(section | {"application_name": "x"}))
    container = PostgresContainer()
    container.config.from_dict(section | {"pool_size": 4, "min_idle": 2})
    await asyncio.to_thread(pg_server.stop)
    try:
        async with Lifespan(container):
            await asyncio.sleep(2.5)  # a few of the keeper's looks while the server is down
            await asyncio.to_thread(pg_server.restart)
            await _until(observer, name, 2)
    finally:
        await observer.dispose()
    warnings = [r for r in caplog.records if "min_idle" in str(r.msg)]
    assert len(warnings) == 1, [r.msg for r in warnings]


async def test_shutdown_while_the_keeper_waits_on_a_silent_server(blockmon_config):
    """Start-up waits at most connect_timeout for the first connections; shutdown cancels
    the keeper's connects in flight instead of waiting for them."""
    async with black_hole() as port:
        container = PostgresContainer()
        container.config.from_dict(
            blockmon_config["postgres"]
            | {"url": None, "host": "127.0.0.1", "port": port}
            | {"connect_timeout": 2, "pool_size": 2, "min_idle": 2}
        )

        async def start_and_stop() -> None:
            async with Lifespan(container):
                await asyncio.sleep(1.5)  # the keeper's next connects are in flight

        await asyncio.wait_for(start_and_stop(), timeout=WAIT)
