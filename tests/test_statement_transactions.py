"""Units of work on the single-statement path, against the real PostgreSQL: one BEGIN and
one COMMIT on one pooled connection, ROLLBACK on error, re-run on a real serialization
failure, and a cancelled unit leaves no transaction behind on any pooled connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import unique

from blockmon.config.settings import PostgresSettings
from blockmon.containers import ApplicationContainer
from blockmon.postgres.engine import create_engine
from blockmon.postgres.statements import Statements, StatementTransaction

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")

BARRIER_TIMEOUT = 30.0
WAIT = 30.0  # generous bound on anything that must not hang


@pytest_asyncio.fixture
async def statements(blockmon_container: ApplicationContainer) -> Statements:
    stmts: Statements = await blockmon_container.postgres.statements()
    return stmts


@pytest_asyncio.fixture
async def table(statements: Statements) -> AsyncIterator[str]:
    """A table of this test's own: ``id int primary key, v int``."""
    name = unique("stx")
    await statements.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int NOT NULL)")
    try:
        yield name
    finally:
        await statements.execute(f"DROP TABLE {name}")


async def _rows(statements: Statements, table: str) -> list[tuple[int, int]]:
    rows = await statements.fetch_all(f"SELECT id, v FROM {table} ORDER BY id")
    return [(r.id, r.v) for r in rows]


@pytest_asyncio.fixture
async def one_connection(blockmon_config: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    """One pooled connection, no validation pings: every query it sends is ours."""
    settings = PostgresSettings.model_validate(
        {**blockmon_config["postgres"], "pool_size": 1, "max_overflow": 0, "validation": "none"}
    )
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_one_begin_and_one_commit(one_connection: AsyncEngine) -> None:
    statements = Statements(one_connection)
    await statements.execute("CREATE TEMP TABLE t (id int, v text)")
    sent: list[str] = []
    async with one_connection.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection.add_query_logger(lambda r: sent.append(r.query.split()[0].upper()))
    await asyncio.sleep(0)
    sent.clear()
    async with statements.transaction(isolation="repeatable read") as tx:
        assert await tx.execute("INSERT INTO t VALUES (:id, :v)", {"id": 1, "v": "a"}) == 1
        assert await tx.execute("INSERT INTO t VALUES (:id, :v)", [{"id": 2, "v": "b"}]) == -1
        assert await tx.scalar("SELECT current_setting('transaction_isolation')") == (
            "repeatable read"
        )
        row = await tx.fetch_one("SELECT v FROM t WHERE id = :id", {"id": 2})
        assert row is not None and row.v == "b" and row["v"] == "b"
        assert [r.id for r in await tx.fetch_all("SELECT id FROM t ORDER BY id")] == [1, 2]
    await asyncio.sleep(0)  # asyncpg calls its query loggers with call_soon
    assert sent[0] == "BEGIN" and sent[-1] == "COMMIT", sent
    assert sent.count("BEGIN") == 1 and sent.count("COMMIT") == 1
    assert "ROLLBACK" not in sent
    assert await statements.scalar("SELECT count(*) FROM t") == 2


async def test_rollback_when_the_block_raises(statements: Statements, table: str) -> None:
    with pytest.raises(ZeroDivisionError):
        async with statements.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} VALUES (1, 10)")
            _ = 1 / 0
    assert await _rows(statements, table) == []


async def test_rollback_after_a_sql_error_returns_a_clean_connection(
    one_connection: AsyncEngine,
) -> None:
    statements = Statements(one_connection)
    await statements.execute("CREATE TEMP TABLE t (id int PRIMARY KEY)")
    with pytest.raises(asyncpg.UniqueViolationError):
        async with statements.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1)")
            await tx.execute("INSERT INTO t VALUES (1)")
    # the same (only) connection: not inside an aborted transaction, and nothing kept
    assert await statements.scalar("SELECT count(*) FROM t") == 0
    assert one_connection.sync_engine.pool.checkedout() == 0


async def test_run_transaction_retries_a_real_serialization_failure(
    statements: Statements, table: str
) -> None:
    """Two SERIALIZABLE units each read the sum and insert it: one fails with 40001 and,
    re-run alone, sees the other's row."""
    barrier = asyncio.Barrier(2)
    attempts: list[int] = []

    def work_for(key: int):  # type: ignore[no-untyped-def]
        async def work(tx: StatementTransaction) -> int:
            attempts.append(key)
            total = await tx.scalar(f"SELECT coalesce(sum(v), 0) FROM {table}")
            if attempts.count(key) == 1:  # first attempt: make sure both have read
                await asyncio.wait_for(barrier.wait(), BARRIER_TIMEOUT)
            await tx.execute(f"INSERT INTO {table} VALUES (:k, :v)", {"k": key, "v": total + 1})
            return int(total)

        return work

    results = await asyncio.gather(
        statements.run_transaction(work_for(1), isolation="serializable", attempts=3),
        statements.run_transaction(work_for(2), isolation="serializable", attempts=3),
    )
    assert len(attempts) == 3, attempts  # exactly one re-run
    assert sorted(results) == [0, 1]  # the re-run saw the committed row
    assert sorted(v for _, v in await _rows(statements, table)) == [1, 2]


async def test_run_transaction_gives_up_after_the_bounded_attempts(statements: Statements) -> None:
    attempts = 0

    async def always_conflicts(tx: StatementTransaction) -> None:
        nonlocal attempts
        attempts += 1
        await tx.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")

    with pytest.raises(asyncpg.SerializationError):
        await statements.run_transaction(always_conflicts, attempts=4, backoff=0.001)
    assert attempts == 4


async def test_cancelled_unit_discards_its_connection_and_commits_nothing(
    blockmon_container: ApplicationContainer, statements: Statements, table: str
) -> None:
    pool = (await blockmon_container.postgres.engine()).sync_engine.pool
    invalidated: list[Any] = []
    event.listen(pool, "invalidate", lambda *a: invalidated.append(a))

    async def unit() -> None:
        async with statements.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} VALUES (1, 1)")
            # the server finishes this statement after the client dropped the connection
            # (as on SQLAlchemy's path), holding the row lock: keep it short
            await tx.execute("SELECT pg_sleep(3)")

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(unit(), 0.5)
    assert pool.checkedout() == 0
    assert len(invalidated) == 1
    assert await asyncio.wait_for(_rows(statements, table), WAIT) == []
    # no pooled connection of ours is left inside a transaction
    engine = await blockmon_container.postgres.engine()
    async with engine.connect() as conn:
        stuck = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            )
        )
    assert stuck == 0


async def test_bad_isolation_and_constructs_are_refused_in_one_line(
    statements: Statements,
) -> None:
    with pytest.raises(ValueError, match=r"^isolation: must be one of .*got 'snapshot'$"):
        async with statements.transaction(isolation="snapshot"):
            raise AssertionError("must not start")
    with pytest.raises(ValueError, match=r"^attempts: must be >= 1, got 0$"):
        await statements.run_transaction(lambda tx: asyncio.sleep(0), attempts=0)
    with pytest.raises(TypeError, match=r"^transaction: statements are SQL strings"):
        async with statements.transaction() as tx:
            await tx.execute(text("SELECT 1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^params: missing value for :id$"):
        async with statements.transaction() as tx:
            await tx.fetch_one("SELECT :id")


async def test_statements_of_a_unit_count_in_the_query_metrics(
    blockmon_container: ApplicationContainer, statements: Statements, table: str
) -> None:
    metrics = await blockmon_container.monitoring.metrics()
    registry = metrics.registry

    def count(operation: str, status: str) -> float:
        labels = {"operation": operation, "status": status}
        return registry.get_sample_value("postgres_queries_total", labels) or 0.0

    before = count("insert", "success"), count("select", "error")
    async with statements.transaction() as tx:
        await tx.execute(f"INSERT INTO {table} VALUES (1, 1)")
        await tx.execute(f"INSERT INTO {table} VALUES (2, 2)", operation="insert")
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with statements.transaction() as tx:
            await tx.scalar("SELECT 1 / 0")
    assert count("insert", "success") == before[0] + 2
    assert count("select", "error") == before[1] + 1


async def test_read_only_refuses_writes_and_ends_with_the_unit(
    statements: Statements, table: str
) -> None:
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        async with statements.transaction(read_only=True) as tx:
            assert await tx.scalar("SELECT current_setting('transaction_read_only')") == "on"
            await tx.execute(f"INSERT INTO {table} VALUES (1, 1)")

    async def work(tx: StatementTransaction) -> str:
        return str(await tx.scalar("SELECT current_setting('transaction_read_only')"))

    assert await statements.run_transaction(work, read_only=True) == "on"
    assert await statements.run_transaction(work) == "off"
    assert await _rows(statements, table) == []
