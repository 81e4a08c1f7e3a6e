"""Units of work against the real PostgreSQL: commit, rollback, and re-running on a
real serialization failure and a real deadlock, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from support import unique

from blockmon.containers import ApplicationContainer
from blockmon.postgres.transactions import Transactions, sqlstate

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")

BARRIER_TIMEOUT = 30.0


@pytest_asyncio.fixture
async def table(blockmon_container: ApplicationContainer) -> AsyncIterator[str]:
    """A table of this test's own: ``id int primary key, v int``."""
    name = unique("tx")
    statements = await blockmon_container.postgres.statements()
    await statements.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int NOT NULL)")
    try:
        yield name
    finally:
        await statements.execute(f"DROP TABLE {name}")


@pytest_asyncio.fixture
async def tx(blockmon_container: ApplicationContainer) -> Transactions:
    transactions: Transactions = await blockmon_container.postgres.transactions()
    return transactions


async def _rows(container: ApplicationContainer, table: str) -> list[tuple[int, int]]:
    rows = await (await container.postgres.statements()).fetch_all(
        f"SELECT id, v FROM {table} ORDER BY id"
    )
    return [(r.id, r.v) for r in rows]


async def test_commit_on_success(
    tx: Transactions, table: str, blockmon_container: ApplicationContainer
) -> None:
    async with tx.begin() as session:
        await session.execute(text(f"INSERT INTO {table} VALUES (1, 10), (2, 20)"))
    assert await _rows(blockmon_container, table) == [(1, 10), (2, 20)]


async def test_rollback_on_error(
    tx: Transactions, table: str, blockmon_container: ApplicationContainer
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with tx.begin() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1, 10)"))
            _ = 1 / 0
    assert await _rows(blockmon_container, table) == []


async def test_non_retryable_error_runs_once(tx: Transactions, table: str) -> None:
    attempts = 0

    async def work(session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        await session.execute(text(f"INSERT INTO {table} VALUES (1, 1), (1, 2)"))

    with pytest.raises(IntegrityError) as caught:
        await tx.run(work, attempts=5)
    assert sqlstate(caught.value) == "23505"
    assert attempts == 1


async def test_retry_on_real_serialization_failure(
    tx: Transactions, table: str, blockmon_container: ApplicationContainer
) -> None:
    """Two SERIALIZABLE transactions each read the sum and insert it: one of them must
    fail with 40001 and, re-run alone, see the other's row."""
    barrier = asyncio.Barrier(2)
    attempts: list[int] = []

    def work_for(key: int):  # type: ignore[no-untyped-def]
        async def work(session: AsyncSession) -> int:
            attempts.append(key)
            total = (
                await session.execute(text(f"SELECT coalesce(sum(v), 0) FROM {table}"))
            ).scalar()
            if attempts.count(key) == 1:  # first attempt: make sure both have read
                await asyncio.wait_for(barrier.wait(), BARRIER_TIMEOUT)
            await session.execute(text(f"INSERT INTO {table} VALUES ({key}, {total} + 1)"))
            return int(total)

        return work

    results = await asyncio.gather(
        tx.run(work_for(1), isolation_level="SERIALIZABLE", attempts=3),
        tx.run(work_for(2), isolation_level="SERIALIZABLE", attempts=3),
    )
    assert len(attempts) == 3, attempts  # exactly one re-run
    assert sorted(results) == [0, 1]  # the re-run saw the committed row
    assert sorted(v for _, v in await _rows(blockmon_container, table)) == [1, 2]


async def test_retry_on_real_deadlock(
    tx: Transactions, table: str, blockmon_container: ApplicationContainer
) -> None:
    statements = await blockmon_container.postgres.statements()
    await statements.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
    barrier = asyncio.Barrier(2)
    attempts: list[int] = []

    def work_for(first: int, second: int):  # type: ignore[no-untyped-def]
        async def work(session: AsyncSession) -> None:
            attempts.append(first)
            await session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
            await session.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = {first}"))
            if attempts.count(first) == 1:
                await asyncio.wait_for(barrier.wait(), BARRIER_TIMEOUT)
            await session.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = {second}"))

        return work

    await asyncio.gather(tx.run(work_for(1, 2)), tx.run(work_for(2, 1)))
    assert len(attempts) == 3, attempts
    assert await _rows(blockmon_container, table) == [(1, 2), (2, 2)]


async def test_gives_up_after_the_bounded_attempts(tx: Transactions) -> None:
    attempts = 0

    async def always_conflicts(session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        await session.execute(
            text("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
        )

    with pytest.raises(DBAPIError) as caught:
        await tx.run(always_conflicts, attempts=4, backoff=0.001)
    assert sqlstate(caught.value) == "40001"
    assert attempts == 4


async def test_attempts_must_be_positive(tx: Transactions) -> None:
    async def work(session: AsyncSession) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match=r"^attempts: must be >= 1, got 0$"):
        await tx.run(work, attempts=0)
