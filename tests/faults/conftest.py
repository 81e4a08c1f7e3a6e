"""Fixtures for the fault scenarios: a fault proxy per test in front of the session's
throwaway PostgreSQL and Redis (``pg_server`` / ``redis_server`` from
blockmon.testing.deployments), and a leak guard on every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from blockmon.testing.proxy import FaultProxy
from blockmon.testing.servers import PostgresServer, RedisServer
from faults.guards import Leaks, collect_leaks, stray_tasks


@pytest_asyncio.fixture
async def pg_proxy(pg_server: PostgresServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", pg_server.port) as proxy:
        yield proxy


@pytest_asyncio.fixture
async def redis_proxy(redis_server: RedisServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", redis_server.port) as proxy:
        yield proxy


@pytest_asyncio.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[Leaks]:
    """Fails the test if it left a leak warning, an asyncio complaint or a running task."""
    with collect_leaks() as leaks:
        yield leaks
        left = stray_tasks()
    assert not left, f"tasks still running after the test: {left}"
    assert not leaks.problems(), "\n".join(leaks.problems())
