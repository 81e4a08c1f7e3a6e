"""Chaos on the fast path: 64 tasks on a 5+5 pool move money with every way blockmon
offers (single `Statements`, units of work, serializable ``run_transaction``,
``AsyncSession`` transfers) while backends are terminated at random, the server is
restarted twice and operations are cut off by timeouts. Afterwards the money sum is
exact, nothing is checked out or idle in a transaction, the server never held more
sessions than the pool's maximum, nothing was logged that a clean run does not log, and
every kind of call works.

The seed is printed; ``CHAOS_SEED=<seed>`` replays a run (the schedule of faults and
operations; the interleaving with the server stays the machine's). ``CHAOS_SECONDS``
sets the length per SQLAlchemy path (default 30: about a minute for both)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, exc, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from blockmon.containers import PostgresContainer
from blockmon.lifespan import Lifespan
from blockmon.postgres.statements import Statements
from blockmon.postgres.transactions import Transactions
from blockmon.testing.servers import PostgresServer
from faults.clients import pg_config

# on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")

TASKS = 64
POOL_SIZE, MAX_OVERFLOW = 5, 5
ACCOUNTS = 20
START_BALANCE = 1_000
RESTARTS = 2
# What an operation may fail with while the server is killed, restarted or cut off.
EXPECTED = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    exc.DBAPIError,
    AsyncAdapt_asyncpg_dbapi.Error,  # a checkout's connect or reset, through raw_connection()
    exc.TimeoutError,  # pool timeout
    TimeoutError,
    OSError,
)


class Tally:
    """What happened, for the report and the assertions."""

    def __init__(self) -> None:
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.terminated = 0
        self.restarts = 0
        self.cancelled = 0
        self.sessions: list[int] = []  # the pool's own sessions, as the server lists them
        self.lingering: list[int] = []  # sessions of connections already discarded


class _Errors(logging.Handler):
    """ERROR records of the libraries and of blockmon (a traceback logged, not raised)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        cause = f" ({record.exc_info[1]!r})" if record.exc_info else ""
        self.lines.append(f"{record.name}: {record.getMessage()}{cause}")


@contextmanager
def logged_errors() -> Iterator[list[str]]:
    handler = _Errors()
    loggers = [logging.getLogger(name) for name in ("asyncio", "sqlalchemy", "blockmon")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def _admin(server: PostgresServer) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1", port=server.port, user="postgres", database="postgres", timeout=5
    )


async def _ask(server: PostgresServer, sql: str, *args: Any) -> Any:
    """One query on a connection of its own; None while the server is away."""
    try:
        admin = await _admin(server)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None
    try:
        return await admin.fetch(sql, *args)
    except (
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.InternalClientError,  # the server went away mid-call
        TimeoutError,
    ):
        return None
    finally:
        admin.terminate()


@pytest.mark.slow
async def test_chaos_keeps_every_invariant(pg_server: PostgresServer) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(2**32))
    seconds = float(os.environ.get("CHAOS_SECONDS") or 30)
    print(f"chaos seed: {seed} (replay: CHAOS_SEED={seed})")
    config = pg_config(
        pg_server.port,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=4.0,
        shutdown_timeout=5.0,
    )
    name = config["application_name"]
    table = f"chaos_{seed}"
    container = PostgresContainer()
    container.config.from_dict(config)
    tally = Tally()
    with logged_errors() as errors:
        async with Lifespan(container):
            statements = await container.statements()
            transactions = await container.transactions()
            await statements.execute(f"DROP TABLE IF EXISTS {table}")
            await statements.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, balance bigint)")
            await statements.execute(
                f"INSERT INTO {table} SELECT i, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) i"
            )
            deadline = time.monotonic() + seconds
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(
                    _worker(
                        random.Random(seed + i), statements, transactions, table, deadline, tally
                    )
                )
                for i in range(TASKS)
            ]
            chaos = asyncio.create_task(
                _chaos(random.Random(seed), pg_server, name, seconds, deadline, tally)
            )
            engine = await container.engine()
            live: dict[int, Any] = {}  # backend pid -> the pool's asyncpg connection

            @event.listens_for(engine.sync_engine.pool, "connect")
            def _opened(dbapi_connection: Any, record: Any) -> None:
                driver = dbapi_connection.driver_connection
                live[driver.get_server_pid()] = driver

            sampler = asyncio.create_task(_sample(pg_server, name, live, stop, tally))
            await asyncio.wait_for(asyncio.gather(*workers, chaos), seconds + 120)
            stop.set()
            await sampler

            # after the chaos: every kind of call works (the server is up again)
            total = await _settled(statements, table)
            assert total == ACCOUNTS * START_BALANCE, f"seed {seed}: money {total}"
            assert await _transfer_unit(statements, table, 1, 2, 1) is None
            assert (
                await statements.run_transaction(
                    lambda tx: _transfer_tx(tx, table, 2, 1, 1), isolation="serializable"
                )
                is None
            )
            await transactions.run_transaction(lambda s: _transfer_session(s, table, 1, 2, 0))
            pool: Any = (await container.engine()).sync_engine.pool
            assert pool.checkedout() == 0, f"seed {seed}: {pool.status()}"
            idle_in_tx = await _ask(
                pg_server,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                "AND state LIKE 'idle in transaction%'",
                name,
            )
            assert idle_in_tx is not None and idle_in_tx[0][0] == 0, f"seed {seed}"
            await statements.execute(f"DROP TABLE {table}")
            # the backends of discarded connections end by themselves (statement_timeout)
            assert await _settles(pg_server, name, live), f"seed {seed}: sessions linger"
    print(
        f"chaos seed {seed}: {sum(tally.done.values())} operations done {dict(tally.done)}, "
        f"{sum(tally.failed.values())} failed {dict(tally.failed)}, "
        f"{tally.terminated} backends terminated, {tally.restarts} restarts, "
        f"{tally.cancelled} cancelled by timeouts, max {max(tally.sessions)} server sessions "
        f"of open connections, max {max(tally.lingering)} of discarded ones still ending "
        f"({len(tally.sessions)} samples)"
    )
    assert not tally.unexpected, f"seed {seed}: {tally.unexpected[:5]}"
    assert tally.restarts == RESTARTS
    assert tally.terminated > 0 and tally.cancelled > 0, f"seed {seed}: no chaos happened"
    assert max(tally.sessions) <= POOL_SIZE + MAX_OVERFLOW, f"seed {seed}: {tally.sessions}"
    assert not errors, f"seed {seed}: {errors[:5]}"
    assert sum(tally.done.values()) > TASKS, f"seed {seed}: {dict(tally.done)}"


async def _worker(
    rng: random.Random,
    statements: Statements,
    transactions: Transactions,
    table: str,
    deadline: float,
    tally: Tally,
) -> None:
    while time.monotonic() < deadline:
        kind = rng.choice(("statement", "unit", "serializable", "session"))
        a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
        amount = rng.randint(1, 50)
        limit = rng.choice((None, None, rng.uniform(0.001, 0.05), rng.uniform(0.05, 0.5)))
        try:
            async with asyncio.timeout(limit):
                if kind == "statement":
                    await statements.scalar(f"SELECT sum(balance) FROM {table}")
                elif kind == "unit":
                    await _transfer_unit(statements, table, a, b, amount)
                elif kind == "serializable":
                    await statements.run_transaction(
                        lambda tx, a=a, b=b, amount=amount: _transfer_tx(tx, table, a, b, amount),
                        isolation="serializable",
                        attempts=3,
                    )
                else:
                    await transactions.run_transaction(
                        lambda s, a=a, b=b, amount=amount: _transfer_session(
                            s, table, a, b, amount
                        ),
                        isolation="serializable",
                    )
            tally.done[kind] += 1
        except TimeoutError:
            tally.cancelled += 1
        except EXPECTED as error:
            tally.failed[type(error).__name__] += 1
            await asyncio.sleep(rng.uniform(0.01, 0.05))  # no hot loop while the server is away
        except (Exception, asyncio.CancelledError) as error:
            tally.unexpected.append(f"{kind}: {type(error).__name__}: {error}")
            if isinstance(error, asyncio.CancelledError):
                raise


async def _transfer_unit(statements: Statements, table: str, a: int, b: int, amount: int) -> None:
    async with statements.transaction() as tx:
        await _transfer_tx(tx, table, a, b, amount)


async def _transfer_tx(tx: Any, table: str, a: int, b: int, amount: int) -> None:
    await tx.execute(
        f"UPDATE {table} SET balance = balance - :n WHERE id = :id", {"n": amount, "id": a}
    )
    await tx.execute(
        f"UPDATE {table} SET balance = balance + :n WHERE id = :id", {"n": amount, "id": b}
    )


async def _transfer_session(session: Any, table: str, a: int, b: int, amount: int) -> None:
    update = f"UPDATE {table} SET balance = balance + :n WHERE id = :id"
    await session.execute(text(update), {"n": -amount, "id": a})
    await session.execute(text(update), {"n": amount, "id": b})


async def _chaos(
    rng: random.Random,
    server: PostgresServer,
    name: str,
    seconds: float,
    deadline: float,
    tally: Tally,
) -> None:
    """Terminate random backends of the pool every few hundred ms; restart the server
    at about a third and two thirds of the run."""
    restarts = [deadline - seconds * (1 - (i + 1) / (RESTARTS + 1)) for i in range(RESTARTS)]
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        if restarts and time.monotonic() >= restarts[0]:
            restarts.pop(0)
            await asyncio.to_thread(server.restart)
            tally.restarts += 1
            continue
        rows = await _ask(
            server, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
        )
        if not rows:
            continue
        for row in rng.sample(rows, min(len(rows), rng.randint(1, 2))):
            killed = await _ask(server, "SELECT pg_terminate_backend($1)", row[0])
            tally.terminated += bool(killed and killed[0][0])


async def _sample(
    server: PostgresServer, name: str, live: dict[int, Any], stop: asyncio.Event, tally: Tally
) -> None:
    """Every 50 ms, the server's sessions of the pool: those of connections the pool
    holds open, and those of connections it discarded (a cancelled statement's backend
    runs on until the statement ends: at most ``statement_timeout``)."""
    while not stop.is_set():
        rows = await _ask(
            server, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
        )
        if rows is not None:
            for pid in [pid for pid, driver in live.items() if driver.is_closed()]:
                del live[pid]
            pids = {row[0] for row in rows}
            tally.sessions.append(len(pids & live.keys()))
            tally.lingering.append(len(pids - live.keys()))
        await asyncio.sleep(0.05)


async def _settles(server: PostgresServer, name: str, live: dict[int, Any]) -> bool:
    """Whether, within 30 s, every session of the pool the server lists is one of a
    connection the pool holds open."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        rows = await _ask(
            server, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
        )
        open_ = {pid for pid, driver in live.items() if not driver.is_closed()}
        if rows is not None and {row[0] for row in rows} <= open_:
            return True
        await asyncio.sleep(0.2)
    return False


async def _settled(statements: Statements, table: str) -> int:
    """The money sum, asked until the server answers (a restart may just have ended)."""
    end = time.monotonic() + 60
    while True:
        try:
            return int(await statements.scalar(f"SELECT sum(balance) FROM {table}"))
        except EXPECTED:
            assert time.monotonic() < end, "the server did not come back within 60 s"
            await asyncio.sleep(0.2)
