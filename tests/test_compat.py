"""The wall around our dependencies' internals (`blockmon._compat`): private accesses
appear nowhere else, a changed layout gives one warning naming the version, and the
public-API fallback gives the same metrics and health against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import exc, text

from blockmon._compat import Layout, prometheus, redis, sqlalchemy
from blockmon.redis.client import TimedOutPool, WaitingConnectionPool
from tests.monitoring.support import http, merged, running
from tests.monitoring.test_metrics import FAMILIES

SRC = Path(__file__).resolve().parents[1] / "src" / "blockmon"
WALL = SRC / "_compat"
LAYOUTS = (sqlalchemy.LAYOUT, redis.LAYOUT, prometheus.LAYOUT, prometheus.FILES)

# Private internals of SQLAlchemy, redis-py and prometheus_client that blockmon uses (or
# used): each may appear only under src/blockmon/_compat.
PRIVATE = {
    "SQLAlchemy QueuePool._max_overflow": r"[.'\"]_max_overflow\b",
    "SQLAlchemy Connection._allow_autobegin": r"[.'\"]_allow_autobegin\b",
    "SQLAlchemy ._has_events": r"[.'\"]_has_events\b",
    "SQLAlchemy Pool._dialect": r"\bpool\._dialect\b|['\"]_dialect['\"]",
    "SQLAlchemy Pool._close_connection": r"[.'\"]_close_connection\b",
    "SQLAlchemy dialect methods replaced on the instance": r"\.dialect\.do_\w+\s*=(?!=)",
    "SQLAlchemy dialect instance __dict__": r"\.dialect\.__dict__",
    "SQLAlchemy Engine.dispose replaced on the instance": r"\.dispose\s*=(?!=)",
    "SQLAlchemy pool checkout/checkin internals": (
        r"[.'\"](_connection_record|_return_conn|_do_return_conn|_checkout|_ConnectionFairy)\b"
        r"|\bpool\._invalidate\b|[.'\"]_recycle\b|\.starttime\s*=(?!=)"
    ),
    "sqlalchemy.util (greenlet_spawn, await_, await_only)": r"\bsqlalchemy\.util\b|\bgreenlet_spawn\b|\bawait_(only)?\(",
    "redis-py ConnectionPool._in_use_connections": r"[.'\"]_in_use_connections\b",
    "redis-py ConnectionPool._available_connections": r"[.'\"]_available_connections\b",
    "redis-py ClusterNode._connections": r"[.'\"]_connections\b",
    "redis-py ClusterNode._free": r"[.'\"]_free\b",
    "prometheus_client value objects": r"[.'\"]_(value|sum|buckets|upper_bounds)\b",
    "a private module of those libraries": (
        r"^\s*(from|import)\s+(sqlalchemy|redis|prometheus_client)(\.\w+)*\._\w+"
    ),
}

# What the patterns must catch: the accesses this wall replaced, as they were written.
BEFORE_THE_WALL = [
    "    overflow = pool._max_overflow  # no public accessor",
    "        if context is None or not context.root_connection._allow_autobegin:",
    "    engine.sync_engine.dialect.do_close = do_close",
    "        engine.dispose = dispose",
    "        info = fairy._connection_record.info",
    "    pool._return_conn = return_conn",
    "    pool._invalidate(fairy, error)",
    "        queue._recycle = -1",
    "                record.starttime = -1.0  # recycled by SQLAlchemy's checkout",
    "from sqlalchemy.util import greenlet_spawn",
    "            await_(driver.close(timeout=timeout))",
    '    in_use = len(getattr(pool, "_in_use_connections", ()))',
    "        owned = connection in self._in_use_connections",
    '    return in_use, _connected(getattr(pool, "_available_connections", ()))',
    "    every = node._connections",
    "    free = node._free",
    "    increment = child._value.inc",
    "    add_sum = child._sum.inc",
    "    bounds = tuple(child._upper_bounds)",
    "    increments = tuple(bucket.inc for bucket in child._buckets)",
    "from redis._parsers.helpers import parse_info",
]


def _private_accesses(text: str) -> list[str]:
    return [
        what
        for what, pattern in PRIVATE.items()
        if any(re.search(pattern, line) for line in text.splitlines())
    ]


def test_the_patterns_catch_what_the_wall_replaced() -> None:
    for line in BEFORE_THE_WALL:
        assert _private_accesses(line), line


def test_private_internals_only_behind_the_wall() -> None:
    found = {
        f"{path.relative_to(SRC)}: {what}"
        for path in SRC.rglob("*.py")
        if WALL not in path.parents
        for what in _private_accesses(path.read_text())
    }
    assert not found, "private internals outside src/blockmon/_compat:\n" + "\n".join(sorted(found))
    for module in ("sqlalchemy", "redis"):  # the patterns see the wall itself
        assert _private_accesses((WALL / f"{module}.py").read_text()), module


def test_the_layouts_pinned_here_are_the_expected_ones() -> None:
    for layout in LAYOUTS:
        assert layout.probe(), f"{layout.distribution} {version(layout.distribution)}"


def test_a_changed_layout_warns_once_naming_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    layout = Layout("sqlalchemy", lambda: False)
    broken = Layout("redis", lambda: [][0])  # a probe that raises counts as changed
    with structlog.testing.capture_logs() as events:
        assert [layout.ok(), layout.ok(), broken.ok(), broken.ok()] == [False] * 4
    assert [e["event"] for e in events] == [
        f"sqlalchemy {version('sqlalchemy')}: internal layout changed; "
        "using the public API (slower)",
        f"redis {version('redis')}: internal layout changed; using the public API (slower)",
    ]
    assert all(e["log_level"] == "warning" for e in events)


@pytest.fixture(params=["internals", "public"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both paths: the internals as pinned, and every layout reported as changed (the
    probes then fail from the start of the container on)."""
    for layout in LAYOUTS:
        monkeypatch.setattr(layout, "checked", None)
        if request.param == "public":
            monkeypatch.setattr(layout, "probe", lambda: False)
    yield request.param


async def _scrape(client) -> tuple[dict[str, str], dict[tuple[str, tuple], float]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    kinds, samples = {}, {}
    for family in text_string_to_metric_families(response.text):
        kinds[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return kinds, samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_and_health_on_either_path(mode: str, blockmon_config: dict) -> None:
    async with running(blockmon_config) as container, http(container) as client:
        engine = await container.postgres.engine()
        statements = await container.postgres.statements()
        redis_client = await container.redis.client()
        cache = await container.redis.cache()
        dialect = engine.sync_engine.dialect
        wrapped = {"do_execute", "do_close"} & set(vars(dialect))
        if mode == "internals":
            assert wrapped == {"do_execute", "do_close"}
            assert type(redis_client.connection_pool) is WaitingConnectionPool
        else:
            # cursor events time the statements; closes run in tasks of their own on
            # both paths (the dialect's public do_close, blockmon.postgres.closing)
            assert wrapped == {"do_close"}
            assert type(redis_client.connection_pool) is TimedOutPool  # redis-py's own
            assert "dispose" not in vars(engine.sync_engine)  # followed by engine_disposed
        assert all(layout.ok() == (mode == "internals") for layout in LAYOUTS)

        health = await client.get("/health")
        assert health.status_code == 200, health.text
        kinds_before, before = await _scrape(client)
        async with engine.connect() as conn:
            for _ in range(2):
                await conn.execute(
                    text("SELECT 1"), execution_options={"blockmon_operation": "compat_core"}
                )
            with pytest.raises(exc.ProgrammingError):
                await conn.execute(
                    text("SELECT * FROM no_such_table"),
                    execution_options={"blockmon_operation": "compat_core_error"},
                )
        await engine.dispose()  # the pool watch follows the new pool
        assert await statements.scalar("SELECT 7", operation="compat_fast") == 7
        await redis_client.set(cache.key("compat"), "1")
        assert await redis_client.get(cache.key("compat")) == b"1"
        assert await cache.get_many(["compat", "missing"]) is not None
        health = await client.get("/health")
        assert health.status_code == 200, health.text
        kinds, after = await _scrape(client)

    for name, kind in FAMILIES.items():  # every family of the exposition, on either path
        assert kinds_before.get(name) == kind == kinds.get(name), name

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("postgres_queries_total", operation="compat_core", status="success") == 2
    assert moved("postgres_query_duration_seconds_count", operation="compat_core") == 2
    assert moved("postgres_queries_total", operation="compat_core_error", status="error") == 1
    assert moved("postgres_query_duration_seconds_count", operation="compat_core_error") == 1
    assert moved("postgres_errors_total", type="programming") == 1
    assert moved("postgres_queries_total", operation="compat_fast", status="success") == 1
    assert moved("postgres_connection_acquire_seconds_count") >= 2  # before and after dispose
    assert not [k for k in after if ("operation", "show") in k[1]]  # first-connect queries
    assert _value(after, "postgres_connections_max") == 20
    assert _value(after, "postgres_connections_min") == 10
    assert moved("redis_commands_total", command="SET", status="success") == 1
    assert moved("redis_commands_total", command="GET", status="success") == 1
    assert moved("redis_commands_total", command="PIPELINE", status="success") == 1
    assert _value(after, "redis_connections_idle") >= 1
    assert _value(after, "redis_memory_usage_bytes") > 0  # INFO parsed on either path
    assert _value(after, "blockmon_health_status", component="redis", status="pass") == 1
    # warn, not pass: this test's database is not migrated (the schema observation)
    assert _value(after, "blockmon_health_status", component="postgres", status="fail") == 0


async def test_pool_waiters_counted_on_either_path(mode: str, blockmon_config: dict) -> None:
    config = merged(blockmon_config, postgres={"pool_size": 1, "max_overflow": 0})
    async with running(config) as container, http(container) as client:
        engine = await container.postgres.engine()
        statements = await container.postgres.statements()
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            waiters = [
                asyncio.create_task(statements.scalar("SELECT 1")),
                asyncio.create_task(_core_select(engine)),
            ]
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                _, samples = await _scrape(client)
                if _value(samples, "postgres_connections_waiting") == 2:
                    break
                assert asyncio.get_running_loop().time() < deadline, samples
                await asyncio.sleep(0.05)
            assert _value(samples, "postgres_connections_max") == 1
            assert _value(samples, "postgres_connections_active") == 1
        assert await asyncio.wait_for(asyncio.gather(*waiters), 30) == [1, 1]
        _, samples = await _scrape(client)
        assert _value(samples, "postgres_connections_waiting") == 0


async def _core_select(engine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT 1"))).scalar_one())
