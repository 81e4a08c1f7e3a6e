"""The cheap path for single statements.

SQLAlchemy's default path wraps each statement in BEGIN ... ROLLBACK (three round
trips) and runs it through its Connection and Result machinery, which costs more CPU
per statement than the driver itself. For SQL strings this path checks a connection
out of the engine's own pool (so pool size, timeout, validation and pool metrics all
hold), runs the statement on the asyncpg connection underneath with asyncpg's
prepared-statement cache, and pays one round trip: it runs at about the speed of a
raw asyncpg pool (see docs/performance.md).

- SQL strings take ``:name`` parameters, as in SQLAlchemy's ``text()``; each distinct
  string is translated to asyncpg's ``$n`` form once. Rows are `Record`, an
  ``asyncpg.Record`` that also reads like SQLAlchemy's Row: ``row.name``,
  ``row["name"]``, ``row[0]``, ``dict(row)``, ``row._mapping``. Errors are asyncpg's own
  (``asyncpg.UniqueViolationError`` ...; ``blockmon.postgres.transactions.sqlstate`` reads them).
  json/jsonb values come back as ``str`` (SQLAlchemy's codec on the connection).
- SQLAlchemy Executables (Core constructs) keep SQLAlchemy's compiler, type processing
  and ``Row`` results, in AUTOCOMMIT mode (one round trip, more CPU).

Callers beyond the pool's capacity queue first-come first-served on a semaphore (for at
most the pool's timeout) instead of in the pool's queue, where a caller that just gave a
connection back takes it again at once and a waiter can be passed over until it times out.

Behind PgBouncer in transaction mode (``postgres.pgbouncer: true``) a statement
prepared outside a transaction may run on another server connection, so there each
statement runs in its own short transaction (``autocommit=False``): three round trips,
still committed.

Every method takes ``operation="load_rules"``: the ``operation`` label of the query
metrics (the SQL verb otherwise). SQL strings report to the metrics through
`blockmon.postgres.hooks`, Executables through SQLAlchemy's events.

Use `blockmon.postgres.transactions` when several statements must commit together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from time import perf_counter
from typing import Any, TypeVar

import asyncpg
from asyncpg import PostgresError
from sqlalchemy import Dialect, Engine, Executable, Row, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.postgres.hooks import OPERATION_OPTION, hook_for

Statement = str | Executable
Params = Mapping[str, Any] | None
ManyParams = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
T = TypeVar("T")


class Record(asyncpg.Record):  # type: ignore[misc]
    """A row of the fast path: an asyncpg Record that also reads like SQLAlchemy's Row."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> Record:
        """The row as a mapping of column names to values (it is one already)."""
        return self


@lru_cache(maxsize=1024)
def positional(dialect: Dialect, sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with ``:name`` parameters rewritten to ``$n``, and the names in order."""
    compiled = text(sql).compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ())


def _arguments(names: tuple[str, ...], params: Params) -> list[Any]:
    if not names:
        return []
    if params is None:
        raise ValueError(f"params: missing value for :{names[0]}")
    try:
        return [params[name] for name in names]
    except KeyError as error:
        raise ValueError(f"params: missing value for :{error.args[0]}") from None


def _named(operation: str | None) -> dict[str, Any] | None:
    """Execution options naming the statement's ``operation`` label, when one is given."""
    return None if operation is None else {OPERATION_OPTION: operation}


def _gate(engine: Engine) -> tuple[asyncio.Semaphore, float] | None:
    """A FIFO semaphore as wide as the engine's QueuePool's capacity, and the pool's
    timeout; None for pools without a (known) bound, whose own queue then applies."""
    pool = engine.pool
    overflow = sa_compat.max_overflow(engine)  # None: not a QueuePool, or unknown
    if overflow is None or overflow < 0 or not isinstance(pool, QueuePool):
        return None
    return asyncio.Semaphore(pool.size() + overflow), pool.timeout()


class Statements:
    """``await db.fetch_all("SELECT ... WHERE id = :id", {"id": 1})``: one statement, one round trip."""

    def __init__(self, engine: AsyncEngine, *, autocommit: bool = True) -> None:
        self.engine = engine
        self._in_transaction = not autocommit
        self._core = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
        )
        self._dialect = engine.sync_engine.dialect
        self._gate_pool: Pool | None = None  # the pool _gate was sized for
        self._gate: tuple[asyncio.Semaphore, float] | None = None
        self._hook = hook_for(engine)

    def __repr__(self) -> str:
        return f"Statements({self.engine.url.render_as_string(hide_password=True)})"

    async def _on_driver(
        self, call: Callable[[Any], Awaitable[T]], sql: str, operation: str | None
    ) -> T:
        """Run ``call(asyncpg_connection)`` on a connection checked out of the engine's pool."""
        pool = self.engine.sync_engine.pool  # dispose() replaces it: always use the current one
        if pool is not self._gate_pool:
            self._gate_pool, self._gate = pool, _gate(self.engine.sync_engine)
        if self._gate is None:
            return await self._checked_out(call, sql, operation)
        gate, timeout = self._gate
        if gate.locked():
            waits = self._hook.waits  # pool metrics, when installed
            if waits is not None:
                waits.wait_started()
            try:
                async with asyncio.timeout(timeout):
                    await gate.acquire()
            except TimeoutError:
                if waits is not None:
                    waits.timed_out()
                raise exc.TimeoutError(
                    f"{pool.status()}: no connection free within {timeout} s"
                ) from None
            finally:
                if waits is not None:
                    waits.waiting -= 1
        else:
            await gate.acquire()  # a permit is free: returns without suspending
        try:
            return await self._checked_out(call, sql, operation)
        finally:
            gate.release()

    async def _checked_out(
        self, call: Callable[[Any], Awaitable[T]], sql: str, operation: str | None
    ) -> T:
        fairy = await self.engine.raw_connection()  # out of the pool, as pool.connect()
        driver: Any = fairy.driver_connection
        observer = self._hook.observer  # metrics, when installed (blockmon.postgres.hooks)
        started = perf_counter() if observer is not None else 0.0
        try:
            if self._in_transaction:
                async with driver.transaction():
                    result = await call(driver)
            else:
                result = await call(driver)
        except PostgresError as error:
            if observer is not None:
                observer(sql, operation, perf_counter() - started, error)
            fairy.close()  # the server refused the statement; the connection is fine
            raise
        except BaseException as error:
            if observer is not None:
                observer(sql, operation, perf_counter() - started, error)
            # Cancelled mid-statement or the connection broke: never hand it out again.
            fairy.invalidate(error)
            raise
        if observer is not None:
            observer(sql, operation, perf_counter() - started, None)
        fairy.close()
        return result

    async def execute(
        self, statement: Statement, params: ManyParams = None, *, operation: str | None = None
    ) -> int:
        """Run a statement; return the affected row count (0 when it reports none). With a
        sequence of parameter sets, run it once per set, atomically and pipelined, and
        return -1 (asyncpg's executemany does not report counts)."""
        if not isinstance(statement, str):
            async with self._core.begin() as conn:
                result = await conn.execute(statement, params, execution_options=_named(operation))
                return int(result.rowcount)
        sql, names = positional(self._dialect, statement)
        if params is not None and not isinstance(params, Mapping):
            rows = [_arguments(names, p) for p in params]
            if rows:
                await self._on_driver(lambda c: c.executemany(sql, rows), sql, operation)
            return -1
        args = _arguments(names, params)
        status: str = await self._on_driver(lambda c: c.execute(sql, *args), sql, operation)
        last = status.rpartition(" ")[2]
        return int(last) if last.isdigit() else 0

    async def fetch_all(
        self, statement: Statement, params: Params = None, *, operation: str | None = None
    ) -> Sequence[Any]:
        """Every row: `Record`s for SQL strings, SQLAlchemy Rows for Executables."""
        if not isinstance(statement, str):
            async with self._core.begin() as conn:
                return (
                    await conn.execute(statement, params, execution_options=_named(operation))
                ).all()
        sql, names = positional(self._dialect, statement)
        args = _arguments(names, params)
        rows: list[Any] = await self._on_driver(
            lambda c: c.fetch(sql, *args, record_class=Record), sql, operation
        )
        return rows

    async def fetch_one(
        self, statement: Statement, params: Params = None, *, operation: str | None = None
    ) -> Any:
        """The first row or None: a `Record` for SQL strings, a Row for Executables."""
        if not isinstance(statement, str):
            async with self._core.begin() as conn:
                row: Row[Any] | None = (
                    await conn.execute(statement, params, execution_options=_named(operation))
                ).first()
                return row
        sql, names = positional(self._dialect, statement)
        args = _arguments(names, params)
        return await self._on_driver(
            lambda c: c.fetchrow(sql, *args, record_class=Record), sql, operation
        )

    async def scalar(
        self, statement: Statement, params: Params = None, *, operation: str | None = None
    ) -> Any:
        """The first column of the first row, or None."""
        if not isinstance(statement, str):
            async with self._core.begin() as conn:
                return (
                    await conn.execute(statement, params, execution_options=_named(operation))
                ).scalar()
        sql, names = positional(self._dialect, statement)
        args = _arguments(names, params)
        return await self._on_driver(lambda c: c.fetchval(sql, *args), sql, operation)
