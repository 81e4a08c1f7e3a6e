"""Other libraries' listeners and wrappers on blockmon's engine: an OpenTelemetry-style
tracer (cursor events rewriting the statement, ``handle_error``), pool ``checkout`` and
``checkin`` listeners, an ``engine_disposed`` listener, a ``DialectEvents.do_execute``
listener and a wrapper of the dialect's ``do_execute`` installed over blockmon's. Each keeps
firing through the engine, Statements, units of work and a ``dispose()``, and blockmon's
metrics still count, on the internals and on the public fallback."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.monitoring.support import http, running
from tests.test_compat import mode  # noqa: F401 (the fixture: internals and public API)


async def _samples(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _listen_as_other_libraries(sync: Any, seen: Counter[str]) -> None:
    """What tracers and pool monitors register, after blockmon installed its own."""

    def before_cursor_execute(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> tuple[str, Any]:
        seen["before_cursor_execute"] += 1
        return f"{statement} /* traced */", params  # sqlcommenter-style rewrite

    def after_cursor_execute(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        assert statement.endswith("/* traced */")
        seen["after_cursor_execute"] += 1

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        seen["do_execute event"] += 1  # observes; the dialect still runs the statement

    event.listen(sync, "before_cursor_execute", before_cursor_execute, retval=True)
    event.listen(sync, "after_cursor_execute", after_cursor_execute)
    event.listen(sync, "handle_error", lambda context: seen.update(["handle_error"]))
    event.listen(sync, "engine_disposed", lambda engine: seen.update(["engine_disposed"]))
    event.listen(sync.dialect, "do_execute", do_execute)
    event.listen(sync.pool, "checkout", lambda *args: seen.update(["checkout"]))
    event.listen(sync.pool, "checkin", lambda *args: seen.update(["checkin"]))
    wrapped = sync.dialect.do_execute  # blockmon's timing wrapper (or the dialect's own)

    def traced_do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        seen["do_execute wrapper"] += 1
        wrapped(cursor, statement, parameters, context)

    sync.dialect.do_execute = traced_do_execute


@pytest.mark.usefixtures("mode")
async def test_other_libraries_keep_firing_and_blockmons_metrics_count(
    blockmon_config: dict[str, Any],
) -> None:
    async with running(blockmon_config) as container, http(container) as client:
        engine = await container.postgres.engine()
        statements = await container.postgres.statements()
        async with engine.connect() as conn:  # the dialect's first-connect queries run now
            await conn.execute(text("SELECT 0"))
        seen: Counter[str] = Counter()
        _listen_as_other_libraries(engine.sync_engine, seen)
        before = await _samples(client)

        async with engine.connect() as conn:
            value = await conn.execute(
                text("SELECT 1"), execution_options={"blockmon_operation": "others_core"}
            )
            assert value.scalar() == 1
            with pytest.raises(exc.ProgrammingError):
                await conn.execute(
                    text("SELECT * FROM no_such_table"),
                    execution_options={"blockmon_operation": "others_error"},
                )
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(
                text("SELECT 2"), execution_options={"blockmon_operation": "others_session"}
            )
        assert await statements.scalar("SELECT 3", operation="others_fast") == 3
        async with statements.transaction() as tx:
            assert await tx.scalar("SELECT 4", operation="others_unit") == 4
        await engine.dispose()
        # the new pool keeps the listeners (SQLAlchemy hands them over) and the metrics
        assert await statements.scalar("SELECT 5", operation="others_fast") == 5
        async with engine.connect() as conn:
            await conn.execute(
                text("SELECT 6"), execution_options={"blockmon_operation": "others_core"}
            )
        after = await _samples(client)
        seen = Counter(seen)  # what fired before the container's own shutdown

    # 4 statements through SQLAlchemy (one failed): each seen by every statement hook
    assert seen["before_cursor_execute"] == 4
    assert seen["after_cursor_execute"] == 3
    assert seen["do_execute event"] == 4
    assert seen["do_execute wrapper"] == 4
    assert seen["handle_error"] == 1
    assert seen["engine_disposed"] == 1
    # checkouts: 3 through SQLAlchemy, 3 through Statements (two calls and a unit)
    assert seen["checkout"] == 6
    assert seen["checkin"] == 6

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("postgres_queries_total", operation="others_core", status="success") == 2
    assert moved("postgres_query_duration_seconds_count", operation="others_core") == 2
    assert moved("postgres_queries_total", operation="others_error", status="error") == 1
    assert moved("postgres_errors_total", type="programming") == 1
    assert moved("postgres_queries_total", operation="others_session", status="success") == 1
    assert moved("postgres_queries_total", operation="others_fast", status="success") == 2
    assert moved("postgres_queries_total", operation="others_unit", status="success") == 1
    assert moved("postgres_connection_acquire_seconds_count") == 6
    assert moved("postgres_connection_usage_seconds_count") == 6


@pytest.mark.parametrize("built_by", ["blockmon", "sqlalchemy"])
async def test_the_pool_guard_follows_dispose_on_either_kind_of_engine(
    built_by: str, blockmon_settings: Any
) -> None:
    """blockmon's engines follow ``dispose()`` through their pool class, an engine built
    elsewhere through the ``engine_disposed`` event: either way the new pool is timed."""
    from prometheus_client import CollectorRegistry
    from sqlalchemy.ext.asyncio import create_async_engine

    from blockmon.metrics import PostgresMetrics
    from blockmon.postgres.disposal import FollowedPool
    from blockmon.postgres.engine import create_engine, engine_url

    settings = blockmon_settings.postgres
    if built_by == "blockmon":
        engine = create_engine(settings)
    else:
        engine = create_async_engine(engine_url(settings))
    assert isinstance(engine.sync_engine.pool, FollowedPool) == (built_by == "blockmon")
    registry = CollectorRegistry()
    metrics = PostgresMetrics(registry)
    metrics.install(engine)
    try:
        for _ in range(2):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            await engine.dispose()
        acquired = registry.get_sample_value("postgres_connection_acquire_seconds_count")
        assert acquired == 2
        assert bool(engine.sync_engine.dispatch.engine_disposed) == (built_by != "blockmon")
    finally:
        metrics.uninstall()
        await engine.dispose()
