"""Units of work against the real PostgreSQL: commit, rollback, and re-running on a
real serialization failure and a real deadlock, bounded."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import unique

from blockmon.config.settings import PostgresSettings
from blockmon.containers import ApplicationContainer
from blockmon.postgres.engine import create_engine
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
    async with tx.transaction() as session:
        await session.execute(text(f"INSERT INTO {table} VALUES (1, 10), (2, 20)"))
    assert await _rows(blockmon_container, table) == [(1, 10), (2, 20)]


async def test_rollback_on_error(
    tx: Transactions, table: str, blockmon_container: ApplicationContainer
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with tx.transaction() as session:
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
        await tx.run_transaction(work, attempts=5)
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
        tx.run_transaction(work_for(1), isolation="serializable", attempts=3),
        tx.run_transaction(work_for(2), isolation="serializable", attempts=3),
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

    await asyncio.gather(tx.run_transaction(work_for(1, 2)), tx.run_transaction(work_for(2, 1)))
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
        await tx.run_transaction(always_conflicts, attempts=4, backoff=0.001)
    assert sqlstate(caught.value) == "40001"
    assert attempts == 4


async def test_attempts_must_be_positive(tx: Transactions) -> None:
    async def work(session: AsyncSession) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match=r"^attempts: must be >= 1, got 0$"):
        await tx.run_transaction(work, attempts=0)


async def test_isolation_and_read_only_apply_to_the_session_and_only_to_it(
    blockmon_config: dict[str, Any], table: str
) -> None:
    """The same words as `Statements.transaction`: ``isolation`` in any case, spaces
    allowed; ``read_only`` makes writes fail; the pooled connection (the only one of its
    pool) forgets both."""
    settings = PostgresSettings.model_validate(
        {**blockmon_config["postgres"], "pool_size": 1, "max_overflow": 0}
    )
    engine = create_engine(settings)
    try:
        await _isolation_and_read_only(Transactions(async_sessionmaker(engine)), table)
    finally:
        await engine.dispose()


async def _isolation_and_read_only(tx: Transactions, table: str) -> None:
    show = (
        "SELECT current_setting('transaction_isolation'),"
        " current_setting('transaction_read_only'), pg_backend_pid()"
    )
    async with tx.transaction(isolation="Repeatable Read", read_only=True) as session:
        level, read_only, pid = (await session.execute(text(show))).one()
        assert (level, read_only) == ("repeatable read", "on")
        with pytest.raises(DBAPIError) as caught:
            await session.execute(text(f"INSERT INTO {table} VALUES (1, 1)"))
        assert sqlstate(caught.value) == "25006"  # read_only_sql_transaction
    async with tx.transaction() as session:  # the same connection, reset at check-in
        assert tuple((await session.execute(text(show))).one()) == ("read committed", "off", pid)

    async def work(session: AsyncSession) -> tuple[str, str]:
        row = (await session.execute(text(show))).one()
        assert row[2] == pid
        return str(row[0]), str(row[1])

    assert await tx.run_transaction(work, isolation="serializable") == ("serializable", "off")
    assert await tx.run_transaction(work, read_only=True) == ("read committed", "on")
    assert await tx.run_transaction(work) == ("read committed", "off")


async def test_a_bad_isolation_is_refused_in_one_line_before_any_work(tx: Transactions) -> None:
    async def work(session: AsyncSession) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match=r"^isolation: must be one of .*got 'snapshot'$"):
        async with tx.transaction(isolation="snapshot"):
            raise AssertionError("must not start")
    with pytest.raises(ValueError, match=r"^isolation: must be one of .*got 'snapshot'$"):
        await tx.run_transaction(work, isolation="snapshot")


def test_transactions_and_statements_share_one_vocabulary() -> None:
    """`Transactions` (sessions) and `Statements` (the driver) name the same ideas alike:
    a ``transaction(isolation, read_only)`` block and ``run_transaction(work, isolation,
    read_only, attempts, backoff)``, with the same defaults (deprecated spellings aside)."""
    from blockmon.postgres.statements import Statements

    def parameters(method: object) -> list[tuple[str, object]]:
        return [
            (name, p.default)
            for name, p in inspect.signature(method).parameters.items()  # type: ignore[arg-type]
            if name not in {"self", "readonly"}
        ]

    for name in ("transaction", "run_transaction"):
        assert parameters(getattr(Transactions, name)) == parameters(getattr(Statements, name))
    assert parameters(Transactions.run_transaction) == [
        ("work", inspect.Parameter.empty),
        ("isolation", None),
        ("read_only", False),
        ("attempts", 3),
        ("backoff", 0.02),
    ]
