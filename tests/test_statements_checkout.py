"""`Statements` check a connection out without a greenlet when the pool guard sees that
SQLAlchemy's checkout cannot await: an idle connection that needs no connect and no
ping. Everywhere it could await (no connection yet, a stale one to ping, one past its
lifetime, one invalidated, ``pre_ping``, a user's checkout listener, a pool replaced by
``dispose()``) they take SQLAlchemy's path, and the call still works."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import logging
import pstats
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from support import eventually, pg_backends, unique

from blockmon.config.settings import PostgresSettings
from blockmon.metrics import PostgresMetrics
from blockmon.postgres.engine import create_engine
from blockmon.postgres.hooks import hook_for
from blockmon.postgres.statements import Statements
from blockmon.provisioning.servers import connect

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")
# whether a call takes SQLAlchemy's greenlet where the fast path needs none: the public
# fallback has no greenlet-free checkout
FALLBACK = {"fast": False, "fallback": True}

PID = "SELECT pg_backend_pid()"


async def _greenlet_used(call: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
    """Whether ``call()`` ran SQLAlchemy's ``greenlet_spawn``, and its result."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        result = await call()
    finally:
        profile.disable()
    names = {name for (_, _, name) in pstats.Stats(profile).stats}  # type: ignore[attr-defined]
    return "greenlet_spawn" in names, result


@pytest_asyncio.fixture
async def make_engine(blockmon_config: dict[str, Any]) -> AsyncIterator[Callable[..., AsyncEngine]]:
    engines: list[AsyncEngine] = []

    def make(**postgres: Any) -> AsyncEngine:
        settings = PostgresSettings.model_validate(
            {**blockmon_config["postgres"], "pool_size": 1, "max_overflow": 0, **postgres}
        )
        engines.append(create_engine(settings))
        return engines[-1]

    try:
        yield make
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_warm_pool_hands_out_without_a_greenlet(make_engine, sqlalchemy_path) -> None:
    statements = Statements(make_engine())
    spawned, pid = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned  # the first call connects
    for call in (
        lambda: statements.scalar(PID),
        lambda: statements.fetch_one("SELECT :n AS n", {"n": "x"}),
        lambda: statements.execute("SELECT 1"),
    ):
        spawned, _ = await _greenlet_used(call)
        assert spawned is FALLBACK[sqlalchemy_path]

    async def unit() -> Any:
        async with statements.transaction() as tx:
            return await tx.scalar(PID)

    spawned, same = await _greenlet_used(unit)
    assert spawned is FALLBACK[sqlalchemy_path]
    assert same == pid  # the one pooled connection, reused


async def test_a_stale_connection_is_pinged_through_sqlalchemy(make_engine, blockmon_config):
    engine = make_engine(validation="bypass", validation_window=0.2)
    statements = Statements(engine)
    pid = await statements.scalar(PID)
    admin = await connect(PostgresSettings.model_validate(blockmon_config["postgres"]))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.4)  # idle past the window: pinged, found dead, replaced
    spawned, new_pid = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned
    assert new_pid != pid


async def test_a_connection_past_its_lifetime_is_reopened(make_engine, sqlalchemy_path) -> None:
    statements = Statements(make_engine(max_lifetime=0.4))
    pid = await statements.scalar(PID)
    await asyncio.sleep(0.6)
    spawned, new_pid = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned
    assert new_pid != pid
    spawned, _ = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned is FALLBACK[sqlalchemy_path]  # young again


async def test_an_invalidated_connection_is_reconnected(make_engine) -> None:
    statements = Statements(make_engine())
    pid = await statements.scalar(PID)
    with pytest.raises(TimeoutError):  # cancelled mid-statement: the connection is discarded
        await asyncio.wait_for(statements.scalar("SELECT pg_sleep(10)"), 0.2)
    spawned, new_pid = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned
    assert new_pid != pid


@pytest.mark.parametrize("sqlalchemy_path", ["fast"], indirect=True)  # the guard's checkout
async def test_pre_ping_pings_every_checkout(make_engine) -> None:
    engine = make_engine(validation="pre_ping")
    PostgresMetrics(CollectorRegistry()).install(engine)  # the guard is installed
    assert hook_for(engine).checkout is not None
    statements = Statements(engine)
    await statements.scalar(PID)
    pings: list[str] = []
    engine.sync_engine.dialect.do_ping = _counting(engine.sync_engine.dialect.do_ping, pings)  # type: ignore[method-assign]
    spawned, _ = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned
    assert pings == ["ping"]


def _counting(do_ping: Callable[[Any], bool], pings: list[str]) -> Callable[[Any], bool]:
    def counted(dbapi_connection: Any) -> bool:
        pings.append("ping")
        return do_ping(dbapi_connection)

    return counted


async def test_a_checkout_listener_runs_in_sqlalchemys_greenlet(make_engine) -> None:
    engine = make_engine()
    statements = Statements(engine)
    await statements.scalar(PID)
    seen: list[str] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *args: seen.append("checkout"))
    spawned, _ = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned
    assert seen == ["checkout"]


async def test_after_dispose_the_new_pool_connects_then_runs_without_a_greenlet(
    make_engine, sqlalchemy_path
) -> None:
    engine = make_engine()
    statements = Statements(engine)
    pid = await statements.scalar(PID)
    await engine.dispose()
    spawned, new_pid = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned
    assert new_pid != pid
    spawned, _ = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned is FALLBACK[sqlalchemy_path]


async def test_without_the_pool_guard_statements_take_sqlalchemys_path(make_engine) -> None:
    engine = make_engine(validation="none")  # no validation, no metrics: no guard
    assert hook_for(engine).checkout is None
    statements = Statements(engine)
    await statements.scalar(PID)
    spawned, _ = await _greenlet_used(lambda: statements.scalar(PID))
    assert spawned


@pytest.mark.parametrize("path", ["statement", "unit of work", "failed statement"])
async def test_an_overflow_connection_given_back_is_closed_cleanly(
    make_engine, blockmon_config, caplog, path: str
) -> None:
    """A connection beyond ``pool_size`` coming back to a full pool is closed, which
    awaits the driver: done outside SQLAlchemy's greenlet it logged "Exception closing
    connection" (MissingGreenlet) and left the asyncpg connection unclosed."""
    name = unique("overflow")
    engine = make_engine(max_overflow=1, application_name=name)
    statements = Statements(engine)

    async def hold() -> Any:
        if path == "unit of work":
            async with statements.transaction() as tx:
                return await tx.scalar("SELECT pg_sleep(0.2)")
        if path == "failed statement":
            with pytest.raises(asyncpg.DivisionByZeroError):
                await statements.scalar("SELECT 1 / (count(*) - 1)::int FROM pg_sleep(0.2)")
            return None
        return await statements.scalar("SELECT pg_sleep(0.2)")

    settings = PostgresSettings.model_validate(blockmon_config["postgres"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with caplog.at_level(logging.ERROR, logger="sqlalchemy.pool"):
            await asyncio.wait_for(asyncio.gather(hold(), hold()), 30)
            assert await eventually(lambda: _backends_are(settings, name, 1))
            gc.collect()
    assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert engine.sync_engine.pool.checkedout() == 0
    assert await statements.scalar("SELECT 1") == 1


async def _backends_are(settings: PostgresSettings, name: str, count: int) -> bool:
    return await pg_backends(settings, name) == count
