"""Fixtures for the fault scenarios: one throwaway PostgreSQL and Redis per session
(every test leaves them running), a fault proxy per test, and a leak guard on every test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from faults.guards import Leaks, collect_leaks, stray_tasks
from faults.proxy import FaultProxy
from faults.servers import ThrowawayPostgres, ThrowawayRedis


@pytest.fixture(scope="session")
def _pg_server() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def _redis_server() -> Iterator[ThrowawayRedis]:
    with ThrowawayRedis() as server:
        yield server


@pytest.fixture
def pg_server(_pg_server: ThrowawayPostgres) -> ThrowawayPostgres:
    """The session's throwaway PostgreSQL, running (restarted if a test left it down)."""
    if not _pg_server.running():
        _pg_server.start()
    return _pg_server


@pytest.fixture
def redis_server(_redis_server: ThrowawayRedis) -> ThrowawayRedis:
    """The session's throwaway Redis, running (restarted if a test left it down)."""
    if not _redis_server.running():
        _redis_server.start()
    return _redis_server


@pytest_asyncio.fixture
async def pg_proxy(pg_server: ThrowawayPostgres) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", pg_server.port) as proxy:
        yield proxy


@pytest_asyncio.fixture
async def redis_proxy(redis_server: ThrowawayRedis) -> AsyncIterator[FaultProxy]:
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
