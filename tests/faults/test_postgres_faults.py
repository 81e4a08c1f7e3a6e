"""PostgreSQL faults: restart under load, blackhole, latency, cancellation, pool exhaustion.

Each test bounds every operation by what the configured timeouts allow, never by speed.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from functools import partial
from typing import Any

import asyncpg
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.health import Status
from blockmon.testing.proxy import FaultProxy, Mode
from blockmon.testing.servers import PostgresServer, RedisServer
from faults.clients import (
    MONITORING,
    PG_TIMEOUTS,
    monitored,
    pg_config,
    postgres,
    queue_pool,
    redis_config,
    wait_for_status,
)
from faults.load import Recorder, run_workers

# The longest one operation may take: wait for the pool, connect, then BEGIN, two
# INSERTs and COMMIT each up to command_timeout, plus aborting a dead connection, plus
# slack for a loaded 2-core machine.
OP_BOUND = (
    PG_TIMEOUTS["pool_timeout"]
    + PG_TIMEOUTS["connect_timeout"]
    + 4 * PG_TIMEOUTS["command_timeout"]
    + 2 * 2.0
    + 5.0
)
# Errors a caller may see while the server is down or unreachable.
PG_DOWN_ERRORS = (exc.DBAPIError, exc.TimeoutError, TimeoutError, OSError)
VALIDATIONS = ["bypass", "pre_ping", "none"]
# How long health may take to notice a change: a few on-demand checks, each bounded by
# the check timeout, plus slack for a loaded machine.
HEALTH_BOUND = 3 * MONITORING["check_timeout"] + 10.0


async def server_connections(port: int, application_name: str) -> int:
    """Sessions the server holds for ``application_name`` (asked over a direct connection)."""
    conn = await asyncpg.connect(
        host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=5
    )
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            application_name,
            timeout=5,
        )
        return count
    finally:
        await conn.close(timeout=5)


async def eventually(check: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it is truthy; return its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


async def make_table(engine: AsyncEngine) -> str:
    name = f"pairs_{secrets.token_hex(4)}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {name} (id bigint NOT NULL, half int NOT NULL)"))
    return name


@pytest.mark.parametrize(
    ("validation", "crash"), [*((v, False) for v in VALIDATIONS), ("bypass", True)]
)
async def test_restart_under_load_loses_nothing_and_recovers(
    pg_server: PostgresServer, redis_server: RedisServer, validation: str, crash: bool
) -> None:
    """A clean restart (pg_ctl stop -m fast, then start) or a crash (SIGKILL, then start
    with crash recovery) while 50 workers write two-row transactions and read them back.
    The container's health check fails while the server is down and passes once it is
    back, in the same process."""
    config = pg_config(pg_server.port, validation=validation, pool_size=10, max_overflow=10)
    async with monitored(config, redis_config(redis_server.port)) as handles:
        engine = handles.engine
        checker = handles.checker
        assert (await checker.check("postgres")).status == Status.PASS
        transactions = handles.transactions
        table = await make_table(engine)
        recorder = Recorder()
        ids = itertools.count()
        written: list[int] = []

        async def write(key: int) -> None:
            async with transactions.transaction() as session:
                for half in (1, 2):
                    await session.execute(
                        text(f"INSERT INTO {table} VALUES (:id, :half)"), {"id": key, "half": half}
                    )

        async def read(key: int) -> None:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(f"SELECT count(*) FROM {table} WHERE id = :id"), {"id": key}
                    )
                ).scalar()
            assert rows == 2, f"a committed write {key} shows {rows} rows"

        async def worker(number: int, stop: asyncio.Event) -> None:
            while not stop.is_set():
                key = next(ids)
                if (await recorder.run("write", key, partial(write, key))).ok:
                    written.append(key)
                    await recorder.run("read", key, partial(read, key))
                else:
                    await asyncio.sleep(0.05)

        stop = asyncio.Event()
        load = asyncio.create_task(run_workers(50, worker, stop))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(pg_server.kill if crash else pg_server.stop)
        down = await wait_for_status(checker, "postgres", {Status.FAIL}, HEALTH_BOUND)
        assert down.output, "a failed check says why"
        await asyncio.to_thread(pg_server.start)
        back = time.monotonic()
        # Under load the pool is busy: the check may warn "pool saturated", never fail.
        up = await wait_for_status(checker, "postgres", {Status.PASS, Status.WARN}, HEALTH_BOUND)
        assert up.status == Status.PASS or "pool saturated" in (up.reason or ""), up
        await asyncio.sleep(max(0.0, back + 4.0 - time.monotonic()))
        stop.set()
        await asyncio.wait_for(load, OP_BOUND + 5)
        assert (await checker.check("postgres")).status == Status.PASS
        assert handles.sample("blockmon_health_status", component="postgres", status="pass") == 1

        assert recorder.longest() <= OP_BOUND
        failed = recorder.failed()
        assert failed, "the restart should have failed some operations"
        assert all(isinstance(op.error, PG_DOWN_ERRORS) for op in failed), recorder.error_types()
        assert not [op for op in failed if isinstance(op.error, AssertionError)]
        # Back within a few seconds, in this process: everything started 3 s after the
        # server was up succeeded, and there were such operations.
        late = [op for op in recorder.ops if op.started > back + 3.0]
        assert late and all(op.ok for op in late), recorder.error_types()

        async with engine.connect() as conn:
            counts: dict[int, int] = dict(
                (await conn.execute(text(f"SELECT id, count(*) FROM {table} GROUP BY id"))).all()
            )
        assert all(counts.get(key) == 2 for key in written), "a successful write was lost"
        assert set(counts.values()) <= {2}, "a write was half applied"
        assert queue_pool(engine).checkedout() == 0


@pytest.mark.parametrize("validation", VALIDATIONS)
async def test_blackhole_fails_within_timeouts_and_heals(
    pg_proxy: FaultProxy, redis_server: RedisServer, validation: str
) -> None:
    config = pg_config(pg_proxy.port, validation=validation, pool_size=5, max_overflow=5)
    async with monitored(config, redis_config(redis_server.port)) as handles:
        engine = handles.engine
        checker = handles.checker

        async def query() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.gather(*(query() for _ in range(5)))  # a warm pool
        pg_proxy.mode = Mode.BLACKHOLE
        # The check gives up after its own timeout (not the statement's), and says so.
        started = time.monotonic()
        blackholed = await asyncio.wait_for(checker.check("postgres", max_age=0), OP_BOUND)
        assert time.monotonic() - started <= MONITORING["check_timeout"] + 5
        assert blackholed.status == Status.FAIL, blackholed
        assert "timed out" in (blackholed.output or ""), blackholed
        recorder = Recorder()
        await asyncio.wait_for(
            asyncio.gather(*(recorder.run("query", n, query) for n in range(20))), OP_BOUND + 5
        )
        assert len(recorder.failed()) == 20
        assert all(isinstance(op.error, PG_DOWN_ERRORS) for op in recorder.ops)
        assert recorder.longest() <= OP_BOUND

        pg_proxy.mode = Mode.PASS
        healed = time.monotonic()
        after = Recorder()
        while time.monotonic() < healed + 3.0:
            if (await after.run("query", 0, query)).ok:
                break
        assert after.ops[-1].ok, after.error_types()
        assert after.ops[-1].started - healed <= 3.0
        ok = Recorder()
        await asyncio.gather(*(ok.run("query", n, query) for n in range(20)))
        assert not ok.failed(), ok.error_types()
        assert queue_pool(engine).checkedout() == 0
        await wait_for_status(checker, "postgres", {Status.PASS}, HEALTH_BOUND)


@pytest.mark.parametrize(("validation", "may_fail"), [("bypass", 0), ("pre_ping", 0), ("none", 1)])
async def test_restart_while_idle_costs_at_most_one_request(
    pg_server: PostgresServer, validation: str, may_fail: int
) -> None:
    """After an idle restart, validation decides who finds the dead connections: the
    pool (bypass: idle longer than the window; pre_ping: always) or the first request
    (none), which then invalidates the pool so that no other request fails."""
    config = pg_config(pg_server.port, validation=validation, pool_size=5, max_overflow=0)
    async with postgres(config) as handles:
        engine = handles.engine

        async def query() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.gather(*(query() for _ in range(5)))
        await asyncio.to_thread(pg_server.restart)
        await asyncio.sleep(0.6)  # longer than validation_window: the connections are idle
        recorder = Recorder()
        for n in range(10):
            await recorder.run("query", n, query)
        failed = recorder.failed()
        assert len(failed) == may_fail, recorder.error_types()
        assert all(isinstance(op.error, exc.DBAPIError) for op in failed)
