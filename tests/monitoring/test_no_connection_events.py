"""Full instrumentation adds no ConnectionEvents listener: any one of them would make
SQLAlchemy join event dispatchers on every connection checkout (docs/performance.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy import text

from blockmon.metrics import PostgresMetrics
from blockmon.postgres.engine import create_engine
from tests.monitoring.support import running


async def test_instrumented_engine_has_no_connection_events(blockmon_config):
    async with running(blockmon_config) as container:
        engine = await container.postgres.engine()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert engine.sync_engine._has_events is False
        assert engine.sync_engine.dialect.__dict__.get("do_execute") is not None  # timed


async def test_uninstall_gives_the_dialect_and_dispose_back(blockmon_settings):
    # validation "none": the pool's checkout/checkin guard (blockmon.postgres.pool) is the
    # metrics' alone; with "bypass" the engine keeps it (and the dispose wrapper) for
    # its validation.
    settings = blockmon_settings.postgres.model_copy(update={"validation": "none"})
    engine = create_engine(settings)
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
    for name in ("do_execute", "do_executemany", "do_execute_no_params"):
        assert name not in dialect.__dict__
    assert "dispose" not in engine.sync_engine.__dict__
    assert "connect" not in engine.sync_engine.pool.__dict__
    assert engine.sync_engine._has_events is False
