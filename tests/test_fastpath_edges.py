"""The fast path (`Statements`, the pool guard, the dialect wrappers) at its edges, each
reproduced against the real server: ``dispose()`` and container shutdown with work in
flight, a backend terminated mid-statement, cancellation while a transaction rolls back,
DDL that changes a cached statement's types, a client-side ``DataError``, other
libraries' pool listeners. Every test runs twice: on SQLAlchemy's internals as pinned,
and with every layout reported as changed (the public fallback), so the two paths
cannot drift."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import captured_logs, eventually, pg_backends, unique

from blockmon.config.settings import PostgresSettings
from blockmon.containers import PostgresContainer
from blockmon.errors import BlockmonError
from blockmon.lifespan import Lifespan
from blockmon.metrics import PostgresMetrics
from blockmon.postgres.engine import create_engine
from blockmon.postgres.statements import Statements
from blockmon.provisioning.servers import connect
from blockmon.testing.proxy import FaultProxy, Mode
from blockmon.testing.servers import PostgresServer

PID = "SELECT pg_backend_pid()"
# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")
FAST_ONLY = pytest.mark.parametrize("sqlalchemy_path", ["fast"], indirect=True)


@pytest.fixture
def postgres(blockmon_config: dict[str, Any]) -> dict[str, Any]:
    """The run's postgres section with an application_name of this test's own."""
    return {**blockmon_config["postgres"], "application_name": unique("edge")}


@pytest_asyncio.fixture
async def make_engine(postgres: dict[str, Any]) -> AsyncIterator[Callable[..., AsyncEngine]]:
    engines: list[AsyncEngine] = []

    def make(**overrides: Any) -> AsyncEngine:
        settings = PostgresSettings.model_validate({**postgres, **overrides})
        engines.append(create_engine(settings))
        return engines[-1]

    try:
        yield make
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.fixture
def problems(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """What a clean edge never leaves: ResourceWarnings, "Exception closing connection"
    (MissingGreenlet) and the other errors SQLAlchemy's pool logs, garbage-collected
    connections; ``problems()`` lists them so far, after a GC pass."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="sqlalchemy"):

            def found() -> list[str]:
                gc.collect()
                return [
                    f"{w.category.__name__}: {w.message}"
                    for w in caught
                    if issubclass(w.category, ResourceWarning) or "non-checked-in" in str(w.message)
                ] + [
                    f"{r.name}: {r.getMessage()}"
                    for r in caplog.records
                    if r.name.startswith("sqlalchemy")
                ]

            yield found


async def _admin(postgres: dict[str, Any]) -> asyncpg.Connection:
    return await connect(PostgresSettings.model_validate(postgres))


async def _sessions(postgres: dict[str, Any]) -> int:
    return await pg_backends(
        PostgresSettings.model_validate(postgres), postgres["application_name"]
    )


async def _sampled(postgres: dict[str, Any], samples: list[int], stop: asyncio.Event) -> None:
    """Count this test's server sessions every 20 ms until ``stop``."""
    while not stop.is_set():
        samples.append(await _sessions(postgres))
        await asyncio.sleep(0.02)


# -- dispose() with work in flight ------------------------------------------------------


@pytest.mark.parametrize("path", ["statements", "engine"])
async def test_dispose_with_calls_in_flight_closes_every_session(
    make_engine, postgres, problems, path: str
) -> None:
    """Pool 2+2, four calls in flight (held on a lock another session holds),
    ``dispose()`` while they run: each call completes, its connection is closed when it
    comes back to the disposed pool (not parked there, not closed outside SQLAlchemy's
    greenlet), and the server never saw more sessions than the pool's maximum."""
    engine = make_engine(pool_size=2, max_overflow=2)
    statements = Statements(engine)

    async def call() -> Any:
        if path == "statements":
            return await statements.scalar(WAIT)
        async with engine.connect() as conn:
            return (await conn.execute(text(WAIT))).scalar()

    samples: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sampled(postgres, samples, stop))
    async with _held(postgres):
        calls = [asyncio.create_task(call()) for _ in range(4)]
        assert await eventually(lambda: _are(_sessions(postgres), 4))
        await engine.dispose()
    assert await asyncio.wait_for(asyncio.gather(*calls), 30) == [""] * 4
    assert await eventually(lambda: _are(_sessions(postgres), 0))
    stop.set()
    await sampler
    assert max(samples) <= 4
    assert engine.sync_engine.pool.checkedout() == 0
    assert await statements.scalar("SELECT 1") == 1  # the new pool works
    del calls
    assert problems() == []


LOCK = 22_2212  # an advisory lock key of this module
WAIT = f"SELECT pg_advisory_xact_lock_shared({LOCK})::text"  # waits while _held holds it


@asynccontextmanager
async def _held(postgres: dict[str, Any]) -> AsyncIterator[None]:
    """The advisory lock ``WAIT`` waits for, held by a session of its own until the
    block ends."""
    admin = await _admin({**postgres, "application_name": "edge-admin"})
    try:
        await admin.execute(f"SELECT pg_advisory_lock({LOCK})")
        yield
    finally:
        await admin.close()


async def _are(count: Any, expected: int) -> bool:
    return bool(await count == expected)


# -- container shutdown with work in flight ---------------------------------------------


async def test_shutdown_waits_for_work_in_flight_then_refuses_every_call(
    postgres, problems
) -> None:
    """Shutdown with statements, units of work and sessions in flight: they finish (up to
    ``shutdown_timeout``), then the engine closes; every call after it fails at once with
    one blockmon error, and no pool is rebuilt (the server shows no new session)."""
    container = PostgresContainer()
    container.config.from_dict({**postgres, "pool_size": 2, "max_overflow": 2})
    lifespan = Lifespan(container)
    await lifespan.__aenter__()
    engine = await container.engine()
    statements = await container.statements()
    transactions = await container.transactions()

    async def statement() -> str:
        return str(await statements.scalar(WAIT + " || 'statement'"))

    async def unit() -> str:
        async with statements.transaction() as tx:
            return str(await tx.scalar(WAIT + " || 'unit'"))

    async def session() -> str:
        async with transactions.transaction() as s:
            return str((await s.execute(text(WAIT + " || 'session'"))).scalar())

    samples: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sampled(postgres, samples, stop))
    async with _held(postgres):
        work = [asyncio.create_task(call()) for call in (statement, unit, session, statement)]
        assert await eventually(lambda: _are(_sessions(postgres), 4))
        shutdown = asyncio.create_task(lifespan.__aexit__(None, None, None))
        await asyncio.sleep(0.3)
        assert not shutdown.done()  # waiting for the work in flight
    await asyncio.wait_for(shutdown, 30)
    assert all(task.done() for task in work)
    assert [task.result() for task in work] == ["statement", "unit", "session", "statement"]
    assert await eventually(lambda: _are(_sessions(postgres), 0))

    for call in (
        lambda: statements.scalar("SELECT 1"),
        lambda: statements.transaction().__aenter__(),
        lambda: transactions.run_transaction(lambda s: s.execute(text("SELECT 1"))),
        lambda: engine.connect().__aenter__(),
    ):
        with pytest.raises(BlockmonError, match="shut down") as failed:
            await asyncio.wait_for(call(), 30)
        assert "\n" not in str(failed.value)
    await asyncio.sleep(0.2)
    stop.set()
    await sampler
    assert max(samples) <= 4
    assert samples[-1] == 0  # nothing reopened behind the application's back
    assert problems() == []


async def test_shutdown_closes_after_its_timeout_and_work_still_out_is_closed_later(
    postgres, problems
) -> None:
    """A statement still running when ``shutdown_timeout`` passes: shutdown closes
    without it; its connection is closed when it comes back, and the call after it fails
    with the blockmon error."""
    container = PostgresContainer()
    container.config.from_dict(
        {**postgres, "pool_size": 1, "max_overflow": 0, "shutdown_timeout": 0.2}
    )
    lifespan = Lifespan(container)
    await lifespan.__aenter__()
    statements = await container.statements()
    release = asyncio.Event()

    async def long_unit() -> int:
        async with statements.transaction() as tx:
            await tx.scalar("SELECT 1")
            await release.wait()  # still out after the shutdown
            return int(await tx.scalar("SELECT 2"))

    held = asyncio.create_task(long_unit())
    assert await eventually(lambda: _are(_sessions(postgres), 1))
    await lifespan.__aexit__(None, None, None)
    assert not held.done()
    release.set()
    assert await asyncio.wait_for(held, 30) == 2
    assert await eventually(lambda: _are(_sessions(postgres), 0))
    with pytest.raises(BlockmonError, match="shut down"):
        await statements.scalar("SELECT 1")
    assert problems() == []


async def test_start_stop_start_in_one_process(postgres, problems) -> None:
    container = PostgresContainer()
    container.config.from_dict({**postgres, "pool_size": 1, "max_overflow": 0})
    for _ in range(2):
        async with Lifespan(container):
            engine = await container.engine()
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert await eventually(lambda: _are(_sessions(postgres), 0))
    assert problems() == []


# -- a terminated backend ---------------------------------------------------------------


async def _terminate_when_running(postgres: dict[str, Any], sql_start: str) -> int:
    """Terminate the backend of this test running a statement starting with
    ``sql_start``; its pid."""
    admin = await _admin(postgres)
    try:
        for _ in range(600):
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                "AND state = 'active' AND query LIKE $2",
                postgres["application_name"],
                sql_start + "%",
            )
            if pid is not None:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                return int(pid)
            await asyncio.sleep(0.05)
        raise AssertionError(f"no statement {sql_start!r} seen running")
    finally:
        await admin.close()


@pytest.mark.parametrize("path", ["statement", "unit of work"])
async def test_a_terminated_backend_is_never_reused_and_is_logged_as_lost(
    make_engine, postgres, problems, path: str
) -> None:
    engine = make_engine(pool_size=2, max_overflow=0)
    statements = Statements(engine)
    # two pooled connections, both opened before the one that dies
    before = set(
        await asyncio.gather(*(statements.scalar(f"{PID}, pg_sleep(0.2)") for _ in range(2)))
    )
    assert len(before) == 2

    async def victim() -> Any:
        if path == "unit of work":
            async with statements.transaction() as tx:
                return await tx.scalar("SELECT pg_sleep(30)")
        return await statements.scalar("SELECT pg_sleep(30)")

    with captured_logs("info") as logs:
        call = asyncio.create_task(victim())
        killed = await _terminate_when_running(postgres, "SELECT pg_sleep(30)")
        with pytest.raises(Exception) as failed:
            await asyncio.wait_for(call, 30)
        assert isinstance(failed.value, asyncpg.PostgresConnectionError), repr(failed.value)
        # the next calls work, each on a connection opened after the loss: the dead one
        # was not checked back in, and the pool was invalidated as on SQLAlchemy's path
        after = await asyncio.gather(
            *(statements.scalar(f"{PID}, pg_sleep(0.2)") for _ in range(2))
        )
    assert killed in before
    assert killed not in after
    assert not set(after) & before
    events = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    assert [e["event"] for e in events].count("postgres connection lost") == 1
    assert engine.sync_engine.pool.checkedout() == 0
    assert problems() == []


# -- cancellation -----------------------------------------------------------------------


async def test_a_cancel_during_rollback_propagates_as_cancelled(make_engine, problems) -> None:
    statements = Statements(make_engine(pool_size=1, max_overflow=0))

    async def block() -> None:
        async with statements.transaction() as tx:
            await tx.execute("SELECT 1")
            current = asyncio.current_task()
            assert current is not None
            current.cancel()  # delivered at the next await: the ROLLBACK
            raise ValueError("the application's own error")

    task = asyncio.create_task(block())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert await statements.scalar("SELECT 1") == 1
    assert problems() == []


async def test_a_timeout_during_rollback_is_a_timeout(make_engine, problems) -> None:
    statements = Statements(make_engine(pool_size=1, max_overflow=0))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(30) as deadline, statements.transaction() as tx:
            await tx.execute("SELECT 1")
            deadline.reschedule(asyncio.get_running_loop().time())  # expires at the ROLLBACK
            raise ValueError("the application's own error")
    assert await statements.scalar("SELECT 1") == 1
    assert problems() == []


@pytest.mark.parametrize("path", ["statement", "unit of work"])
async def test_a_cancel_while_an_overflow_connection_closes_lets_the_close_finish(
    make_engine, postgres, problems, path: str
) -> None:
    # The chaos run's seed 4070074697: a timeout fired while the call gave back an
    # overflow connection, whose graceful close then raised CancelledError into
    # SQLAlchemy's pool ("Exception closing connection ... (CancelledError())").
    engine = make_engine(pool_size=1, max_overflow=1)
    statements = Statements(engine)
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with statements.transaction() as tx:  # the pool's one connection
            await tx.execute("SELECT 1")
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    caller: list[asyncio.Task[Any]] = []

    def cancel_the_caller(dbapi_connection: Any, record: Any) -> None:
        caller[0].cancel()  # delivered at the close's first await

    event.listen(engine.sync_engine.pool, "close", cancel_the_caller)

    async def call() -> None:
        if path == "unit of work":
            async with statements.transaction() as tx:
                await tx.execute("SELECT pg_sleep(0.3)")
        else:
            await statements.execute("SELECT pg_sleep(0.3)")

    caller.append(asyncio.create_task(call()))  # on the overflow connection
    assert await eventually(lambda: _checked_out(engine, 2))
    release.set()
    await holder  # its connection fills the pool: the caller's overflow one is closed
    with pytest.raises(asyncio.CancelledError):
        await caller[0]
    assert caller[0].cancelled()
    event.remove(engine.sync_engine.pool, "close", cancel_the_caller)
    assert engine.sync_engine.pool.checkedout() == 0
    assert await eventually(lambda: _fewer_than(postgres, 2), timeout=10)
    assert problems() == []


async def test_dispose_returns_once_closed_and_a_cancel_during_it_propagates(
    make_engine, postgres, problems
) -> None:
    engine = make_engine(pool_size=3, max_overflow=0)
    statements = Statements(engine)
    drivers: list[Any] = []
    event.listen(
        engine.sync_engine.pool,
        "connect",
        lambda dbapi, record: drivers.append(dbapi.driver_connection),
    )
    await asyncio.gather(*(statements.scalar("SELECT pg_sleep(0.1)") for _ in range(3)))
    assert len(drivers) == 3
    await engine.dispose()
    # each close runs in a task of its own; dispose() returns once they ended
    assert [d.is_closed() for d in drivers] == [True, True, True]
    assert await _sessions(postgres) == 0

    await asyncio.gather(*(statements.scalar("SELECT pg_sleep(0.1)") for _ in range(3)))
    pool = engine.sync_engine.pool
    disposing: list[asyncio.Task[Any]] = []

    def cancel_the_dispose(dbapi_connection: Any, record: Any) -> None:
        disposing[0].cancel()

    event.listen(pool, "close", cancel_the_dispose)
    disposing.append(asyncio.create_task(engine.dispose()))
    with pytest.raises(asyncio.CancelledError):
        await disposing[0]
    event.remove(pool, "close", cancel_the_dispose)
    assert await eventually(lambda: _fewer_than(postgres, 1), timeout=10)  # closed anyway
    assert await statements.scalar("SELECT 1") == 1
    assert problems() == []


async def _fewer_than(postgres: dict[str, Any], count: int) -> bool:
    return await _sessions(postgres) < count


async def _checked_out(engine: AsyncEngine, count: int) -> bool:
    return engine.sync_engine.pool.checkedout() == count


async def test_no_retry_starts_once_a_cancel_is_pending(make_engine, problems) -> None:
    statements = Statements(make_engine(pool_size=1, max_overflow=0))
    attempts: list[int] = []

    async def work(tx: Any) -> None:
        attempts.append(1)
        try:
            await tx.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"
            )
        finally:
            current = asyncio.current_task()
            assert current is not None
            current.cancel()

    task = asyncio.create_task(statements.run_transaction(work, attempts=3))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == [1]
    assert await statements.scalar("SELECT 1") == 1
    assert problems() == []


# -- client-side errors -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["statement", "unit of work"])
async def test_a_client_side_data_error_keeps_the_connection(
    make_engine, problems, path: str
) -> None:
    statements = Statements(make_engine(pool_size=1, max_overflow=0))
    pid = await statements.scalar(PID)
    # refused by asyncpg before anything was sent (asyncpg 0.32 raises the SQLSTATE-22
    # class for it; its InterfaceError twin is kept the same way)
    with pytest.raises(asyncpg.DataError, match="invalid input for query argument"):
        if path == "unit of work":
            async with statements.transaction() as tx:
                await tx.scalar("SELECT CAST(:n AS int)", {"n": "not a number"})
        else:
            await statements.scalar("SELECT CAST(:n AS int)", {"n": "not a number"})
    assert await statements.scalar(PID) == pid
    assert problems() == []


# -- other libraries on the same engine -------------------------------------------------


@pytest.mark.parametrize("kind", ["checkin", "reset"])
async def test_other_libraries_pool_listeners_may_await_at_check_in(
    make_engine, problems, kind: str
) -> None:
    """A ``checkin`` or ``reset`` listener another library registered runs where it may
    await (SQLAlchemy's greenlet), on every Statements path."""
    engine = make_engine(pool_size=1, max_overflow=0)
    statements = Statements(engine)
    await statements.scalar("SELECT 1")  # warm: the next checkouts need no greenlet
    seen: list[Any] = []

    def awaiting(dbapi_connection: Any, *rest: Any) -> None:
        if dbapi_connection is not None:  # asks the server: awaits
            seen.append(dbapi_connection.run_async(lambda c: c.fetchval("SELECT 41 + 1")))

    event.listen(engine.sync_engine.pool, kind, awaiting)
    assert await statements.scalar("SELECT 1") == 1
    async with statements.transaction() as tx:
        assert await tx.scalar("SELECT 2") == 2
    assert seen == [42, 42]
    assert problems() == []


async def test_undo_removes_only_blockmons_own_wrappers() -> None:
    """Another library wraps ``dispose``, the dialect's ``do_execute`` and the pool's
    ``connect`` on the instances after blockmon did: blockmon taking its own off leaves
    theirs in place."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from blockmon.postgres.execution import observe_errors, unobserve_errors
    from blockmon.postgres.pool import guard_for, release_guard

    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    sync: Any = engine.sync_engine
    try:
        guard_for(engine)
        observer = lambda failure: None  # noqa: E731
        observe_errors(engine, observer)
        theirs = {
            "dispose": (sync, sync.dispose),
            "do_execute": (sync.dialect, sync.dialect.do_execute),
            "connect": (sync.pool, sync.pool.connect),
        }
        wrappers = {}
        for name, (target, wrapped) in theirs.items():
            wrappers[name] = _wrapper(wrapped)
            setattr(target, name, wrappers[name])
        release_guard(engine)
        unobserve_errors(engine, observer)
        for name, (target, _) in theirs.items():
            assert getattr(target, name) is wrappers[name], name
    finally:
        await engine.dispose()


def _wrapper(wrapped: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    return wrapper


async def test_leak_timers_of_connections_held_across_dispose_are_disarmed(
    make_engine, problems
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, leak_detection_threshold=1.0)
    statements = Statements(engine)
    with captured_logs("info") as logs:
        async with statements.transaction() as tx:
            await tx.scalar("SELECT 1")
            await engine.dispose()
        await asyncio.sleep(1.5)  # past the threshold: a timer left armed would report
    events = [json.loads(line)["event"] for line in logs.getvalue().splitlines() if line.strip()]
    assert not [e for e in events if "possible leak" in e], events
    assert problems() == []


# -- DDL that changes a cached statement's types ----------------------------------------


@pytest.mark.parametrize("ddl_path", ["statements", "sqlalchemy"])
async def test_after_alter_column_type_units_and_statements_work_on_every_connection(
    make_engine, problems, ddl_path: str
) -> None:
    """Every pooled connection has the statements cached (asyncpg's cache on the fast
    path, SQLAlchemy's on its own); a column changes type. Then units of work
    (``run_transaction`` as ``Transactions.run_transaction``) and single statements work on every
    connection, as on SQLAlchemy's path: the cached plan the server finds invalid is
    prepared again and the unit re-run (before, each connection's first unit raised
    ``InvalidCachedStatementError``)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from blockmon.postgres.transactions import Transactions

    engine = make_engine(pool_size=2, max_overflow=0)
    statements = Statements(engine)
    transactions = Transactions(async_sessionmaker(engine, expire_on_commit=False))
    table = unique("typed")
    await statements.execute(f"CREATE TABLE {table} (id int, v int)")
    await statements.execute(f"INSERT INTO {table} VALUES (1, 1)")
    select = f"SELECT v FROM {table} WHERE id = :id"
    insert = f"INSERT INTO {table} (id, v) VALUES (2, :v)"

    async def unit(value: Any) -> Any:
        async def work(tx: Any) -> Any:
            found = await tx.scalar(select, {"id": 1})
            await tx.execute(insert, {"v": value})
            return found

        return await statements.run_transaction(work)

    async def session_unit(value: Any) -> Any:
        async def work(session: Any) -> Any:
            found = (await session.execute(text(select), {"id": 1})).scalar()
            await session.execute(text(insert), {"v": value})
            return found

        return await transactions.run_transaction(work)

    async def single(value: Any) -> Any:
        found = await statements.scalar(select, {"id": 1})
        await statements.execute(insert, {"v": value})
        return found

    for call in (unit, session_unit, single):
        assert await _on_both(call, 5) == [1, 1]
    await _alter(engine, statements, ddl_path, f"ALTER TABLE {table} ALTER COLUMN v TYPE text")
    for _ in range(2):
        for call in (unit, session_unit, single):
            assert await _on_both(call, "x") == ["1", "1"], call.__name__
    await statements.execute(f"DROP TABLE {table}")
    assert problems() == []


async def test_after_ddl_through_statements_old_parameter_types_are_prepared_again(
    make_engine, problems
) -> None:
    """A statement cached with the old parameter types (refused by asyncpg before it is
    sent, so the server never says the plan is invalid) is prepared again once, after
    DDL run through Statements; before, it failed on that connection until
    ``max_lifetime`` recycled it."""
    engine = make_engine(pool_size=2, max_overflow=0)
    statements = Statements(engine)
    table = unique("typed")
    await statements.execute(f"CREATE TABLE {table} (id int, v int)")
    insert = f"INSERT INTO {table} (id, v) VALUES (2, :v)"

    async def single(value: Any) -> Any:
        return await statements.execute(insert, {"v": value})

    async def unit(value: Any) -> Any:
        async def work(tx: Any) -> Any:
            return await tx.execute(insert, {"v": value})

        return await statements.run_transaction(work)

    for call in (single, unit):
        assert await _on_both(call, 5) == [1, 1]
    await statements.execute(f"ALTER TABLE {table} ALTER COLUMN v TYPE text")
    for _ in range(2):
        for call in (single, unit):
            assert await _on_both(call, "x") == [1, 1], call.__name__
    with pytest.raises(asyncpg.DataError):  # a bad value is still refused
        await statements.execute(insert, {"v": 5})
    await statements.execute(f"DROP TABLE {table}")
    assert problems() == []


async def _on_both(call: Callable[[Any], Any], value: Any) -> list[Any]:
    """``call`` on each of the two pooled connections at once."""

    async def held(value: Any) -> Any:
        result = await call(value)
        await asyncio.sleep(0.05)
        return result

    return list(await asyncio.gather(held(value), held(value)))


async def _alter(engine: AsyncEngine, statements: Statements, path: str, ddl: str) -> None:
    if path == "statements":
        await statements.execute(ddl)
    else:
        async with engine.begin() as conn:
            await conn.execute(text(ddl))


# -- validation and lifetime --------------------------------------------------------------


async def test_a_connection_failing_validation_is_replaced_where_it_stands(
    make_engine, pg_server: PostgresServer, problems
) -> None:
    """A connection idle past ``validation_window`` whose ping fails is reconnected in
    place, as SQLAlchemy does for ``InvalidatePoolError`` (the public path): its caller
    gets the new connection, a caller that came while it pinged waits its turn, and
    other libraries' ``checkin`` listeners see one checkin per caller. Before, the fast
    path checked the dead connection in and went through the pool's queue again (a
    checkin nobody made, and a second turn in the queue)."""
    # The throwaway server over TCP: the run's may be an embedded one on a socket.
    async with FaultProxy("127.0.0.1", pg_server.port) as proxy:
        engine = make_engine(
            url=None,
            host="127.0.0.1",
            port=proxy.port,
            user="postgres",
            database="postgres",
            pool_size=1,
            max_overflow=0,
            pool_timeout=1.0,
            validation="bypass",
            validation_window=0.1,
        )
        statements = Statements(engine)
        pool = engine.sync_engine.pool
        checkins: list[bool] = []
        event.listen(pool, "checkin", lambda dbapi, record: checkins.append(dbapi is not None))
        first = await statements.scalar(PID)
        await asyncio.sleep(0.3)  # idle past the window: pinged at its next checkout
        proxy.mode = Mode.BLACKHOLE  # the ping waits for its answer
        early = asyncio.create_task(statements.scalar(PID))
        assert await eventually(lambda: _true(pool.checkedout() == 1))  # pinging

        async def later() -> Any:
            async with engine.connect() as conn:  # waits in the pool's queue
                return (await conn.execute(text("SELECT pg_sleep(2), 'later'"))).one()[1]

        late = asyncio.create_task(later())
        await asyncio.sleep(0.2)
        proxy.cut()  # the ping fails: the connection is gone
        proxy.mode = Mode.PASS
        renewed = await asyncio.wait_for(early, 30)
        assert renewed != first
        assert await asyncio.wait_for(late, 30) == "later"
        assert pool.checkedout() == 0
        assert checkins == [True, True, True]  # the first call, the early one, the late one
    assert problems() == []


async def _true(value: bool) -> bool:
    return value


async def test_a_connections_lifetime_counts_from_its_connect(make_engine, problems) -> None:
    """``max_lifetime`` counts from the connect, as SQLAlchemy's ``pool_recycle`` does
    (the public path), also for a connection opened before the pool guard took the
    lifetime over (metrics installed on a running engine); before, the fast path counted
    from the guard's first checkout of it."""
    engine = make_engine(pool_size=1, max_overflow=0, max_lifetime=2.0, validation="none")
    first = await _pid(engine)  # connected now, no pool guard yet
    await asyncio.sleep(1.0)
    metrics = PostgresMetrics(CollectorRegistry())
    metrics.install(engine)  # the guard applies the lifetime from here on
    try:
        assert await _pid(engine) == first  # 1 s old
        await asyncio.sleep(1.3)  # 2.3 s after its connect, 1.3 s after the guard saw it
        assert await _pid(engine) != first
    finally:
        metrics.uninstall()
    assert problems() == []


async def _pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(PID))).scalar_one())


# -- the greenlet-free checkout meets the unexpected ------------------------------------


@FAST_ONLY  # the public fallback has no greenlet-free checkout
async def test_the_greenlet_free_checkout_falls_back_when_sqlalchemy_awaits(
    postgres, problems, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy's checkout of an idle connection starts to await (a release that adds
    I/O there, another library's wrapper): the call still works, through SQLAlchemy's
    path, one warning says so, and later calls keep to that path."""
    engine = create_engine(
        PostgresSettings.model_validate({**postgres, "pool_size": 1, "max_overflow": 0})
    )
    try:
        await _falls_back(engine, monkeypatch)
    finally:
        await engine.dispose()
    assert problems() == []


async def _falls_back(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.pool.base import _ConnectionRecord
    from sqlalchemy.util import await_

    from blockmon.postgres.hooks import hook_for

    statements = Statements(engine)
    await statements.scalar("SELECT 1")  # warm: the next checkout would take no greenlet
    assert hook_for(engine).checkout is not None  # the internals' path (the pinned layout)
    original = _ConnectionRecord.get_connection

    def get_connection(record: Any) -> Any:
        await_(asyncio.sleep(0))  # I/O where there was none
        return original(record)

    monkeypatch.setattr(_ConnectionRecord, "get_connection", get_connection)
    with captured_logs("info") as logs:
        assert await statements.scalar("SELECT 2") == 2
        assert await statements.scalar("SELECT 3") == 3
    events = [json.loads(line)["event"] for line in logs.getvalue().splitlines() if line.strip()]
    assert [e for e in events if "greenlet-free checkout" in e] == [
        "postgres: the greenlet-free checkout met an await; using SQLAlchemy's checkout"
    ]
    assert hook_for(engine).checkout is None
    assert engine.sync_engine.pool.checkedout() == 0
    monkeypatch.undo()


async def test_another_librarys_wrapper_of_the_pools_connect_is_always_called(
    make_engine, problems
) -> None:
    """Another library wraps the pool's ``connect`` after blockmon, and its wrapper
    awaits (it may run only in SQLAlchemy's greenlet): every `Statements` checkout goes
    through it, on either path; before, the greenlet-free checkout went around it."""
    from sqlalchemy.util import await_

    engine = make_engine(pool_size=1, max_overflow=0)
    statements = Statements(engine)
    await statements.scalar("SELECT 1")  # warm: the next checkout would take no greenlet
    pool: Any = engine.sync_engine.pool
    blockmons = pool.connect
    seen: list[str] = []

    def connect() -> Any:
        await_(asyncio.sleep(0))
        seen.append("theirs")
        return blockmons()

    pool.connect = connect
    assert await statements.scalar("SELECT 2") == 2
    async with statements.transaction() as tx:
        assert await tx.scalar("SELECT 3") == 3
    assert seen == ["theirs", "theirs"]
    assert pool.checkedout() == 0
    assert problems() == []
