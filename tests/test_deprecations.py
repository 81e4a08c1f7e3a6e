"""The names 0.2.0 replaced still work for one release, against the real servers, and
each use warns once with a DeprecationWarning that names the replacement and points at
the caller's line (this file), not at blockmon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from blockmon import (
    Cache,
    PostgresSettings,
    Statements,
    StatementTransaction,
    Transactions,
)
from blockmon.containers import ApplicationContainer
from blockmon.postgres.engine import create_engine

SHOW = "SELECT current_setting('transaction_isolation')"


@contextmanager
def deprecated(old: str, new: str) -> Iterator[None]:
    """Exactly one DeprecationWarning naming ``old`` and ``new``, from this file's line."""
    with pytest.warns(DeprecationWarning) as caught:
        yield
    warnings = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(warnings) == 1, [str(w.message) for w in warnings]
    message = str(warnings[0].message)
    assert message.startswith(f"{old} is deprecated since blockmon 0.2.0"), message
    assert "removed in 0.3.0" in message and new in message, message
    assert warnings[0].filename == __file__, warnings[0].filename  # the caller's line


@pytest_asyncio.fixture
async def transactions(blockmon_container: ApplicationContainer) -> Transactions:
    found: Transactions = await blockmon_container.postgres.transactions()
    return found


@pytest_asyncio.fixture
async def statements(blockmon_container: ApplicationContainer) -> Statements:
    found: Statements = await blockmon_container.postgres.statements()
    return found


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


async def test_transactions_begin_and_run(transactions: Transactions) -> None:
    with deprecated("Transactions.begin()", "Transactions.transaction()"):
        block = transactions.begin(isolation_level="SERIALIZABLE")
    async with block as session:
        assert (await session.execute(text(SHOW))).scalar() == "serializable"

    async def work(session: AsyncSession) -> Any:
        return (await session.execute(text(SHOW))).scalar()

    with deprecated("Transactions.run()", "Transactions.run_transaction()"):
        unit = transactions.run(work, isolation_level="REPEATABLE READ", attempts=2)
    assert await unit == "repeatable read"


async def test_statements_autocommit(one_connection: AsyncEngine) -> None:
    """``autocommit=False`` is ``pgbouncer=True``: each statement in a transaction of its
    own (BEGIN, the statement, COMMIT); ``autocommit=True`` sends the statement alone."""
    sent: list[str] = []
    async with one_connection.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection.add_query_logger(
            lambda r: sent.append(r.query.split()[0].rstrip(";").upper())
        )
    for autocommit, expected in ((False, ["BEGIN", "SELECT", "COMMIT"]), (True, ["SELECT"])):
        with deprecated("Statements(autocommit=)", "Statements(pgbouncer=)"):
            statements = Statements(one_connection, autocommit=autocommit)
        await asyncio.sleep(0)
        sent.clear()
        assert await statements.scalar("SELECT 1") == 1
        await asyncio.sleep(0)  # asyncpg calls its query loggers with call_soon
        assert sent == expected, (autocommit, sent)


async def test_statements_readonly(statements: Statements) -> None:
    show = "SELECT current_setting('transaction_read_only')"
    with deprecated("Statements.transaction(readonly=)", "read_only="):
        block = statements.transaction(readonly=True)
    async with block as tx:
        assert await tx.scalar(show) == "on"

    async def work(tx: StatementTransaction) -> Any:
        return await tx.scalar(show)

    with deprecated("Statements.run_transaction(readonly=)", "read_only="):
        unit = statements.run_transaction(work, readonly=True)
    assert await unit == "on"


async def test_transaction_class_and_its_run(statements: Statements) -> None:
    with deprecated("blockmon.postgres.statements.Transaction", "blockmon.StatementTransaction"):
        from blockmon.postgres.statements import Transaction
    assert Transaction is StatementTransaction
    async with statements.transaction() as tx:
        with deprecated("StatementTransaction.run()", "fetch_one()"):
            step = tx.run(tx._driver.fetchval, "SELECT $1::int + 1", (41,), None)
        assert await step == 42


async def test_cache_get_or_compute(blockmon_cache: Cache) -> None:
    async def compute() -> dict[str, int]:
        return {"n": 1}

    with deprecated("Cache.get_or_compute()", "Cache.get_or_compute_json()"):
        lookup = blockmon_cache.get_or_compute("deprecated", compute, ttl=60)
    assert await lookup == {"n": 1}
    assert await blockmon_cache.get_json("deprecated") == {"n": 1}  # stored as JSON


def test_postgres_settings_autocommit_safe() -> None:
    for pgbouncer in (False, True):
        settings = PostgresSettings(pgbouncer=pgbouncer)
        with deprecated("PostgresSettings.autocommit_safe", "not PostgresSettings.pgbouncer"):
            safe = settings.autocommit_safe
        assert safe is not pgbouncer


def test_an_unwarned_use_fails_the_suite() -> None:
    """pyproject's filterwarnings turns blockmon's deprecation warnings into errors, so
    no test (nor blockmon itself) can use a deprecated name without saying so."""
    with pytest.raises(DeprecationWarning, match="deprecated since blockmon"):
        _ = PostgresSettings().autocommit_safe
