"""Closing a pooled connection never raises into SQLAlchemy's pool ("Exception closing
connection" logged at ERROR): the pool's close starts the graceful close in a task of its
own and returns, from SQLAlchemy's greenlet or from plain asyncio code alike
(`blockmon.postgres.closing`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from blockmon.containers import PostgresContainer
from blockmon.lifespan import Lifespan
from blockmon.testing.servers import PostgresServer
from faults.clients import pg_config
from faults.test_postgres_faults import eventually, server_connections


async def test_a_close_outside_the_greenlet_closes_the_connection(
    pg_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = pg_config(pg_server.port)
    container = PostgresContainer()
    container.config.from_dict(config)
    async with Lifespan(container):
        engine = await container.engine()
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            adapted = raw.dbapi_connection
            assert adapted is not None
            before = await server_connections(pg_server.port, config["application_name"])
            with caplog.at_level(logging.DEBUG):
                # Plain asyncio code, as when a connection is closed at its return to a
                # pool from the greenlet-free path: nothing may await here.
                engine.dialect.do_close(adapted)
            assert await eventually(_closed(adapted.driver_connection), timeout=10)
            await connection.invalidate()  # the pool learns the connection is gone
        assert await eventually(
            lambda: _fewer(pg_server.port, config["application_name"], before), timeout=10
        )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _closed(driver: Any) -> Callable[[], Awaitable[bool]]:
    async def closed() -> bool:
        return bool(driver.is_closed())

    return closed


async def _fewer(port: int, name: str, before: int) -> bool:
    await asyncio.sleep(0)
    return await server_connections(port, name) < before
