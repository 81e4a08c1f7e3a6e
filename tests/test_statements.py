"""The single-statement path pays one round trip: asyncpg's query logger sees the
statement alone, where SQLAlchemy's default path also sends BEGIN and ROLLBACK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.postgres import create_engine
from blockmon.settings import PostgresSettings
from blockmon.statements import Statements


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
    assert sent == ["STATEMENT SELECT"]
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
