"""The single-statement path pays one round trip: asyncpg's query logger sees the
statement alone, where SQLAlchemy's default path also sends BEGIN and ROLLBACK. And it
runs on the engine's own pool (limits, timeouts, events) without leaking connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import event, exc, literal, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.settings import PostgresSettings
from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.postgres.engine import create_engine
from blockmon.postgres.statements import Record, Statements

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")


@pytest_asyncio.fixture
async def one_connection_engine(blockmon_config: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    """One pooled connection, no validation pings: every query it sends is ours."""
    settings = PostgresSettings.model_validate(
        {**blockmon_config["postgres"], "pool_size": 1, "max_overflow": 0, "validation": "none"}
    )
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _log_queries(engine: AsyncEngine) -> list[str]:
    """Warm the single connection up, then record what goes over it: asyncpg's query
    logger sees BEGIN / COMMIT / ROLLBACK; prepared statements it does not see, so
    SQLAlchemy's ``before_cursor_execute`` records those."""
    sent: list[str] = []
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection.add_query_logger(
            lambda record: sent.append(record.query.strip().rstrip(";").upper())
        )

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(f"STATEMENT {statement.split()[0].upper()}")

    event.listen(engine.sync_engine, "before_cursor_execute", executed)
    sent.clear()  # the ROLLBACK that ended the warm-up
    return sent


async def test_default_path_pays_three_round_trips(one_connection_engine: AsyncEngine) -> None:
    sent = await _log_queries(one_connection_engine)
    async with one_connection_engine.connect() as conn:
        await conn.execute(text("SELECT 41"))
    # the adapter sends BEGIN lazily, after the cursor event fired
    assert sorted(sent) == ["BEGIN", "ROLLBACK", "STATEMENT SELECT"]


async def test_statements_pay_one_round_trip(one_connection_engine: AsyncEngine) -> None:
    statements = Statements(one_connection_engine)
    sent = await _log_queries(one_connection_engine)
    assert await statements.scalar("SELECT :x + 1", {"x": 41}) == 42
    await asyncio.sleep(0)  # asyncpg calls its query loggers with call_soon
    # SQL strings run on the driver connection, so asyncpg's logger sees the statement
    assert sent == ["SELECT $1 + 1"]
    sent.clear()
    await statements.execute("CREATE TEMP TABLE IF NOT EXISTS t1 (x int)")
    assert await statements.execute("INSERT INTO t1 VALUES (:x)", {"x": 1}) == 1
    assert await statements.execute("INSERT INTO t1 VALUES (:x)", [{"x": 2}, {"x": 3}]) == -1
    rows = await statements.fetch_all("SELECT x FROM t1 ORDER BY x")
    assert [r.x for r in rows] == [1, 2, 3]
    row = await statements.fetch_one("SELECT count(*) AS n FROM t1")
    assert row is not None and row.n == 3
    # asyncpg's executemany shows in its query logger as the INSERT itself
    assert not {"BEGIN", "COMMIT", "ROLLBACK"} & set(sent), sent


async def test_statements_autocommit_each_statement(one_connection_engine: AsyncEngine) -> None:
    """No transaction is left open: a write is visible at once from another connection."""
    statements = Statements(one_connection_engine)
    await statements.execute("CREATE TEMP TABLE IF NOT EXISTS t2 (x int)")
    await statements.execute("INSERT INTO t2 VALUES (7)")
    assert await statements.scalar("SELECT x FROM t2") == 7


@pytest.fixture
async def statements(blockmon_container):
    stmts = await blockmon_container.postgres.statements()
    await stmts.execute(
        "CREATE TABLE IF NOT EXISTS st_items (id int PRIMARY KEY, name text NOT NULL)"
    )
    yield stmts
    await stmts.execute("DROP TABLE IF EXISTS st_items")


async def test_rows_are_records_with_named_parameters(statements):
    assert (
        await statements.execute(
            "INSERT INTO st_items VALUES (:id, :name), (:id2, :name)",
            {"id": 1, "id2": 2, "name": "a"},
        )
        == 2
    )
    row = await statements.fetch_one("SELECT id, name FROM st_items WHERE id = :id", {"id": 1})
    assert isinstance(row, Record)
    assert isinstance(row, asyncpg.Record)
    assert (row["id"], row[1], row.name, dict(row)) == (1, "a", "a", {"id": 1, "name": "a"})
    assert dict(**row._mapping) == {"id": 1, "name": "a"}
    with pytest.raises(AttributeError, match="nope"):
        _ = row.nope
    rows = await statements.fetch_all("SELECT id FROM st_items ORDER BY id")
    assert [r["id"] for r in rows] == [1, 2]
    assert await statements.scalar("SELECT count(*) FROM st_items WHERE name = :n", {"n": "a"}) == 2
    assert await statements.fetch_one("SELECT 1 FROM st_items WHERE id = :id", {"id": 99}) is None
    assert await statements.execute("UPDATE st_items SET name = 'b' WHERE id > :id", {"id": 0}) == 2
    assert await statements.execute("DO $$ BEGIN END $$") == 0  # a status without a count


async def test_a_parameter_used_twice_is_bound_once(statements):
    row = await statements.fetch_one("SELECT CAST(:a AS int) + CAST(:a AS int) AS s", {"a": 2})
    assert row["s"] == 4


async def test_missing_parameter_names_it(statements):
    with pytest.raises(ValueError, match=r"params: missing value for :name"):
        await statements.execute("INSERT INTO st_items VALUES (:id, :name)", {"id": 1})
    with pytest.raises(ValueError, match=r"params: missing value for :id"):
        await statements.fetch_one("SELECT * FROM st_items WHERE id = :id")


async def test_parameter_sets_run_atomically(statements):
    sql = "INSERT INTO st_items VALUES (:id, :name)"
    assert await statements.execute(sql, [{"id": i, "name": "x"} for i in range(5)]) == -1
    assert await statements.scalar("SELECT count(*) FROM st_items") == 5
    with pytest.raises(asyncpg.UniqueViolationError):
        await statements.execute(sql, [{"id": 10, "name": "y"}, {"id": 0, "name": "y"}])
    assert await statements.scalar("SELECT count(*) FROM st_items WHERE id = 10") == 0
    assert await statements.execute(sql, []) == -1


async def test_executables_keep_sqlalchemy_rows(statements):
    row = await statements.fetch_one(select(literal(7).label("n")))
    assert row.n == 7
    assert await statements.scalar(select(literal("s"))) == "s"
    assert [r.n for r in await statements.fetch_all(select(literal(1).label("n")))] == [1]


async def test_runs_on_the_engine_pool_and_fires_its_events(blockmon_container, statements):
    engine = await blockmon_container.postgres.engine()
    pool = engine.sync_engine.pool
    seen = []
    event.listen(pool, "checkout", lambda *a: seen.append("out"))
    event.listen(pool, "checkin", lambda *a: seen.append("in"))
    task = asyncio.create_task(statements.scalar("SELECT pg_sleep(0.3)"))
    deadline = time.monotonic() + 10  # a time bound, not a count of polls
    while True:
        if pool.checkedout() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    assert pool.checkedout() == 1
    await asyncio.wait_for(task, 10)
    assert pool.checkedout() == 0
    assert seen == ["out", "in"]


async def test_sql_errors_return_the_connection(blockmon_container, statements):
    pool = (await blockmon_container.postgres.engine()).sync_engine.pool
    with pytest.raises(asyncpg.DivisionByZeroError):
        await statements.scalar("SELECT 1 / 0")
    assert pool.checkedout() == 0
    assert await statements.scalar("SELECT 1") == 1


async def test_cancelled_statement_discards_its_connection(blockmon_container, statements):
    pool = (await blockmon_container.postgres.engine()).sync_engine.pool
    invalidated = []
    event.listen(pool, "invalidate", lambda *a: invalidated.append(a))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(statements.scalar("SELECT pg_sleep(10)"), 0.2)
    assert pool.checkedout() == 0
    assert len(invalidated) == 1
    assert await asyncio.wait_for(statements.scalar("SELECT 1"), 10) == 1


async def test_pool_limit_and_timeout_hold(blockmon_config):
    blockmon_config["postgres"].update(pool_size=1, max_overflow=0, pool_timeout=0.2)
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    async with Lifespan(container):
        engine = await container.postgres.engine()
        statements = await container.postgres.statements()
        async with engine.connect():
            with pytest.raises(exc.TimeoutError):
                await asyncio.wait_for(statements.scalar("SELECT 1"), 10)
        assert await asyncio.wait_for(statements.scalar("SELECT 1"), 10) == 1


async def test_callers_beyond_capacity_queue_in_order_and_time_out(blockmon_config):
    blockmon_config["postgres"].update(pool_size=1, max_overflow=0, pool_timeout=5)
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    async with Lifespan(container):
        statements = await container.postgres.statements()
        order = []

        async def call(n):
            await statements.scalar("SELECT pg_sleep(0.05)")
            order.append(n)

        tasks = [asyncio.create_task(call(n)) for n in range(6)]
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert order == list(range(6))

    blockmon_config["postgres"].update(pool_timeout=0.2)
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    async with Lifespan(container):
        statements = await container.postgres.statements()
        slow = asyncio.create_task(statements.scalar("SELECT pg_sleep(2)"))
        await asyncio.sleep(0.1)
        with pytest.raises(
            exc.TimeoutError,
            match=r"^QueuePool limit of size 1 overflow 0 reached, connection timed out, timeout 0.20$",
        ):
            await asyncio.wait_for(statements.scalar("SELECT 1"), 10)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
