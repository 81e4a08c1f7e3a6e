"""The fast Statements path reports to the query metrics and the slow-query log."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
import sqlalchemy.exc
from sqlalchemy import text

from blockmon.postgres.hooks import hook_for
from tests.monitoring.support import http, merged, running
from tests.monitoring.test_metrics import scrape, value

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")


async def test_fast_path_moves_query_metrics(blockmon_config):
    async with running(blockmon_config) as container, http(container) as client:
        statements = await container.postgres.statements()
        before = await scrape(client)
        for _ in range(3):
            assert await statements.scalar("SELECT CAST(:n AS int)", {"n": 1}) == 1
        await statements.execute("CREATE TEMP TABLE IF NOT EXISTS t (id int)")
        await statements.fetch_one("SELECT 1 AS x", operation="load_rules")
        await statements.fetch_all(text("SELECT 2"), operation="core_named")
        with pytest.raises(asyncpg.UndefinedTableError):
            await statements.fetch_all("SELECT * FROM no_such_table_here")
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await statements.scalar("SELECT no_such_fn()", operation="load_rules")
        with pytest.raises(asyncpg.DataError):
            await statements.scalar("SELECT CAST(:s AS text)", {"s": 1})
        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("postgres_queries_total", operation="select", status="success") >= 3
    assert moved("postgres_queries_total", operation="create", status="success") == 1
    assert moved("postgres_queries_total", operation="load_rules", status="success") == 1
    assert moved("postgres_queries_total", operation="load_rules", status="error") == 1
    assert moved("postgres_queries_total", operation="core_named", status="success") == 1
    assert moved("postgres_queries_total", operation="select", status="error") == 2
    assert moved("postgres_errors_total", type="programming") == 2
    assert moved("postgres_errors_total", type="data") == 1
    assert moved("postgres_query_duration_seconds_count", operation="select") >= 4
    assert moved("postgres_query_duration_seconds_count", operation="load_rules") == 2


async def test_fast_path_operation_labels_stay_bounded(blockmon_config):
    async with running(blockmon_config) as container, http(container) as client:
        statements = await container.postgres.statements()
        for i in range(300):
            await statements.scalar(f"SELECT {i}")
            await statements.scalar("SELECT 1", operation=f"fast{i}")
        await statements.scalar("SELECT 1", operation="bad name!")
        samples = await scrape(client)
    operations = {
        dict(labels)["operation"] for (name, labels) in samples if name == "postgres_queries_total"
    }
    assert len(operations) <= 110
    assert {"select", "other", "fast0"} <= operations
    assert "fast299" not in operations and "bad name!" not in operations


async def test_fast_path_slow_query_logged_without_parameters(blockmon_config, caplog):
    secret = "param-value-91c4"
    config = merged(blockmon_config, monitoring={"slow_query_threshold": 0.05})
    async with running(config) as container:
        statements = await container.postgres.statements()
        caplog.set_level(logging.WARNING, logger="blockmon.postgres.slow")
        await statements.fetch_one(
            "SELECT pg_sleep(0.1), CAST(:p AS text)", {"p": secret}, operation="nap"
        )
        await statements.scalar("SELECT 1")
    slow = [r for r in caplog.records if r.name == "blockmon.postgres.slow"]
    assert len(slow) == 1
    logged = str(slow[0].msg)
    assert "pg_sleep" in logged and "nap" in logged and "duration_ms" in logged
    assert secret not in logged


async def test_observer_released_at_shutdown(blockmon_config):
    async with running(blockmon_config) as container:
        engine = await container.postgres.engine()
        assert hook_for(engine).observer is not None
    assert hook_for(engine).observer is None


async def test_fast_path_waiters_and_timeouts_are_counted(blockmon_config):
    """Callers queued at the Statements gate show in the waiting gauge, and one that
    gives up counts as an acquire timeout."""
    config = merged(
        blockmon_config, postgres={"pool_size": 1, "max_overflow": 0, "pool_timeout": 1}
    )
    async with running(config) as container, http(container) as client:
        statements = await container.postgres.statements()
        metrics = await container.monitoring.metrics()
        before = await scrape(client)
        holder = asyncio.create_task(statements.scalar("SELECT pg_sleep(3)"))
        await asyncio.sleep(0.3)
        waiter = asyncio.create_task(statements.scalar("SELECT 1"))
        await asyncio.sleep(0.3)
        assert metrics.pool.state().waiting == 1
        with pytest.raises(sqlalchemy.exc.TimeoutError):
            await asyncio.wait_for(waiter, 30)
        assert metrics.pool.state().waiting == 0
        await asyncio.wait_for(holder, 30)
        after = await scrape(client)
    assert (
        value(after, "postgres_connection_acquire_timeouts_total")
        - value(before, "postgres_connection_acquire_timeouts_total")
        == 1
    )
    assert (
        value(after, "postgres_errors_total", type="pool_timeout")
        - value(before, "postgres_errors_total", type="pool_timeout")
        == 1
    )


async def test_statements_follow_the_pool_after_dispose(blockmon_config):
    """dispose() (health recovery does it) replaces the pool; Statements must use the new
    one, so shutdown closes every connection it opened."""
    name = f"bm-dispose-{id(blockmon_config) % 100000}"
    config = merged(blockmon_config, postgres={"application_name": name})
    async with running(config) as container:
        engine = await container.postgres.engine()
        statements = await container.postgres.statements()
        assert await statements.scalar("SELECT 1") == 1
        await engine.dispose()
        assert await statements.scalar("SELECT 1") == 1
        assert engine.sync_engine.pool.checkedin() == 1  # the connection went back to the new pool
        await engine.dispose()
        async with engine.connect() as conn:
            left = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
        assert left == 0


async def test_unusable_operation_names_are_not_remembered(blockmon_config):
    async with running(blockmon_config) as container:
        statements = await container.postgres.statements()
        metrics = await container.monitoring.metrics()
        for i in range(300):
            await statements.scalar("SELECT 1", operation=f"bad name {i}")  # fails the name rule
        assert len(metrics.postgres.by_operation) < 50
