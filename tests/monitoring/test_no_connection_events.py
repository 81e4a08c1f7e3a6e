"""Full instrumentation adds no ConnectionEvents listener (any one of them would make
SQLAlchemy join event dispatchers on every connection checkout), no DialectEvents
listener (``handle_error``, ``do_connect``: SQLAlchemy then iterates the dialect's
``do_execute`` listeners before every statement) and no pool listener on checkout or
checkin (bench/NOTES.md, "Where the time goes")."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from blockmon.metrics import PostgresMetrics
from blockmon.postgres.engine import engine_url
from tests.monitoring.support import running


async def test_instrumented_engine_has_no_connection_events(blockmon_config):
    async with running(blockmon_config) as container:
        engine = await container.postgres.engine()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert engine.sync_engine._has_events is False
        assert engine.sync_engine.dialect._has_events is False
        pool = engine.sync_engine.pool
        assert not pool.dispatch.checkout and not pool.dispatch.checkin
        assert engine.sync_engine.dialect.__dict__.get("do_execute") is not None  # timed


async def test_uninstall_gives_the_dialect_and_dispose_back(blockmon_settings):
    # A plain engine: one of create_engine's keeps the dialect's wrappers for its
    # connection-state log and the pool's guard for its validation
    # (blockmon.postgres.execution, blockmon.postgres.pool). Built without blockmon's pool
    # class, it is followed through dispose() by the engine_disposed event
    # (blockmon.postgres.disposal), taken off again here.
    engine = create_async_engine(engine_url(blockmon_settings.postgres))
    dialect = engine.sync_engine.dialect
    registry = CollectorRegistry()
    metrics = PostgresMetrics(registry)
    metrics.install(engine)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        sample = {"operation": "select", "status": "success"}
        assert registry.get_sample_value("postgres_queries_total", sample) == 1
        await engine.dispose()  # the pool watch follows the new pool
        assert metrics.watch is not None and metrics.watch.state().max > 0
    finally:
        metrics.uninstall()
        await engine.dispose()
    for name in ("do_execute", "do_executemany", "do_execute_no_params", "do_commit", "connect"):
        assert name not in dialect.__dict__
    assert "dispose" not in engine.sync_engine.__dict__
    assert "connect" not in engine.sync_engine.pool.__dict__
    assert not engine.sync_engine.dispatch.engine_disposed
