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

Callers beyond the pool's capacity queue first-come first-served at a `blockmon.gate.Gate`
(for at most the pool's timeout) instead of in the pool's queue, where a caller that just
gave a connection back takes it again at once and a waiter can be passed over until it
times out.

Behind PgBouncer in transaction mode (``postgres.pgbouncer: true``) a statement
prepared outside a transaction may run on another server connection, so there each
statement runs in its own short transaction (``Statements(engine, pgbouncer=True)``):
three round trips, still committed.

Every method takes ``operation="load_rules"``: the ``operation`` label of the query
metrics (the SQL verb otherwise). SQL strings report to the metrics through
`blockmon.postgres.hooks`, Executables through SQLAlchemy's events.

Several statements that must commit together run the same way on one connection:
``async with db.transaction(isolation="serializable") as tx: await tx.execute(...)``
sends one BEGIN, the statements, one COMMIT (ROLLBACK on error), and
``db.run_transaction(work, attempts=3)`` re-runs ``work(tx)`` on 40001/40P01 like
`blockmon.postgres.transactions.Transactions.run_transaction` (same names and parameters;
it keeps SQLAlchemy sessions, for ORM code).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import lru_cache
from time import perf_counter
from typing import Any, TypeGuard, TypeVar, TypeVarTuple, overload

import asyncpg
from asyncpg import PostgresError
from sqlalchemy import Dialect, Engine, Executable, Row, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.sql.selectable import TypedReturnsRows

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.config.deprecation import deprecated
from blockmon.config.log import get_logger
from blockmon.finish import finish_first
from blockmon.gate import Gate
from blockmon.postgres.hooks import OPERATION_OPTION, hook_for
from blockmon.postgres.pool import max_overflow
from blockmon.postgres.transactions import retrying, sql_isolation

Statement = str | Executable
Params = Mapping[str, Any] | None
ManyParams = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
T = TypeVar("T")
_Ts = TypeVarTuple("_Ts")
TupleAny = tuple[Any, ...]  # SQLAlchemy's row type of an untyped statement
_log = get_logger("blockmon.postgres")


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


def _arguments(names: tuple[str, ...], params: Any) -> list[Any]:
    """The values of ``names`` in ``params`` (one mapping), in order."""
    if not names:
        return []
    if params is None:
        raise ValueError(f"params: missing value for :{names[0]}")
    try:
        return list(map(params.__getitem__, names))
    except KeyError as error:
        raise ValueError(f"params: missing value for :{error.args[0]}") from None


def _many(params: ManyParams) -> TypeGuard[Sequence[Mapping[str, Any]]]:
    """Whether ``params`` is a sequence of parameter sets (a dict is checked first: the
    Mapping ABC check costs three calls)."""
    return params is not None and type(params) is not dict and not isinstance(params, Mapping)


def _named(operation: str | None) -> dict[str, Any] | None:
    """Execution options naming the statement's ``operation`` label, when one is given."""
    return None if operation is None else {OPERATION_OPTION: operation}


_DDL = ("ALTER", "DROP")  # command tags after which cached statements may be stale


def begin_statement(isolation: str | None, *, read_only: bool = False) -> str:
    """The BEGIN for ``isolation`` (`blockmon.postgres.transactions.sql_isolation`;
    None: the server's default) and ``read_only``."""
    words = ["BEGIN"]
    level = sql_isolation(isolation)
    if level is not None:
        words.append(f"ISOLATION LEVEL {level}")
    if read_only:
        words.append("READ ONLY")
    return " ".join(words)


def _gate(engine: Engine) -> Gate | None:
    """A FIFO gate as wide as the engine's QueuePool's capacity, waited on for at most the
    pool's timeout; None for pools without a (known) bound, whose own queue then applies."""
    pool = engine.pool
    overflow = max_overflow(engine)  # None: not a QueuePool, or unknown
    if overflow is None or overflow < 0 or not isinstance(pool, QueuePool):
        return None
    return Gate(pool.size() + overflow, pool.timeout())


def _pool_timeout_message(engine: Engine, gate: Gate) -> str:
    """SQLAlchemy's own words for a checkout that timed out, so both paths read alike."""
    pool = engine.pool
    size = pool.size() if isinstance(pool, QueuePool) else 0  # a gate exists for QueuePools only
    overflow = max_overflow(engine) or 0
    return (
        f"QueuePool limit of size {size} overflow {overflow} reached, "
        f"connection timed out, timeout {gate.timeout or 0:0.2f}"
    )


class Statements:
    """``await db.fetch_all("SELECT ... WHERE id = :id", {"id": 1})``: one statement, one
    round trip. ``pgbouncer=True`` (``postgres.pgbouncer``): each statement in a short
    transaction of its own, as a transaction-mode pooler needs (three round trips)."""

    def __init__(
        self, engine: AsyncEngine, *, pgbouncer: bool = False, autocommit: bool | None = None
    ) -> None:
        if autocommit is not None:
            deprecated("Statements(autocommit=)", "Statements(pgbouncer=)")
            pgbouncer = not autocommit
        self.engine = engine
        self._in_transaction = pgbouncer
        self._core = engine if pgbouncer else engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sql_dialect = engine.sync_engine.dialect
        self._gate_pool: Pool | None = None  # the pool _gate was sized for
        self._gate: Gate | None = None
        self._hook = hook_for(engine)

    def __repr__(self) -> str:
        return f"Statements({self.engine.url.render_as_string(hide_password=True)})"

    async def _on_driver(
        self, call: Callable[[Any], Awaitable[T]], sql: str, operation: str | None
    ) -> T:
        """Run ``call(asyncpg_connection)`` on a connection checked out of the engine's pool."""
        pool = self.engine.sync_engine.pool  # dispose() replaces it: always use the current one
        gate = await self._admit(pool)
        try:
            return await self._checked_out(pool, call, sql, operation)
        finally:
            if gate is not None:
                gate.release()

    async def _admit(self, pool: Pool) -> Gate | None:
        """Wait for a permit of the gate in front of ``pool``; the gate to release after,
        or None for an unbounded pool."""
        if pool is not self._gate_pool:
            self._gate_pool, self._gate = pool, _gate(self.engine.sync_engine)
        gate = self._gate
        if gate is None:
            return None
        if not gate.locked():
            await gate.acquire()  # a permit is free: returns without suspending
            return gate
        waits = self._hook.waits  # pool metrics, when installed
        if waits is not None:
            waits.wait_started()
        try:
            admitted = await gate.acquire()
        finally:
            if waits is not None:
                waits.waiting -= 1
        if not admitted:
            if waits is not None:
                waits.timed_out()
            raise exc.TimeoutError(_pool_timeout_message(self.engine.sync_engine, gate))
        return gate

    async def _connection(self) -> Any:
        """A connection out of the engine's pool: taken at once when the pool guard can
        (an idle connection needing no connect or ping: no greenlet, `blockmon.postgres.pool`),
        else through SQLAlchemy's ``raw_connection()``."""
        checkout = self._hook.checkout
        if checkout is not None:
            try:
                fairy = checkout()
            except exc.MissingGreenlet:
                self._unexpected_await()
            else:
                if fairy is not None:
                    return fairy
        return await self.engine.raw_connection()

    def _unexpected_await(self) -> None:
        """SQLAlchemy's checkout awaited where the pool guard saw nothing that could
        (a new SQLAlchemy release, another library's wrapper): this engine's
        `Statements` check out through SQLAlchemy from now on (the pool already
        discarded the connection it was handing out)."""
        self._hook.checkout = None
        _log.warning(
            "postgres: the greenlet-free checkout met an await; using SQLAlchemy's checkout"
        )

    async def _checked_out(
        self, pool: Pool, call: Callable[[Any], Awaitable[T]], sql: str, operation: str | None
    ) -> T:
        fairy = await self._connection()
        driver: Any = fairy.driver_connection
        observer = self._hook.observer  # metrics, when installed (blockmon.postgres.hooks)
        started = perf_counter() if observer is not None else 0.0
        for attempt in (1, 2):
            try:
                if self._in_transaction:
                    async with driver.transaction():
                        result = await call(driver)
                else:
                    result = await call(driver)
            except BaseException as error:
                kept = keeps_connection(error, driver)
                if kept and attempt == 1 and await self._renew_cache(fairy, driver, error):
                    continue  # prepared before the schema changed: once more, re-prepared
                if observer is not None:
                    observer(sql, operation, perf_counter() - started, error)
                if not kept:
                    self._discard(pool, fairy, driver, error)
                    raise
                await self._check_in(pool, fairy)  # refused; the connection is fine
                raise
            break
        if observer is not None:
            observer(sql, operation, perf_counter() - started, None)
        await self._check_in(pool, fairy)
        return result

    def schema_changed(self) -> None:
        """DDL ran or a cached plan went invalid: every connection's cached statements
        (asyncpg's on this path, SQLAlchemy's on its own) are prepared again at their
        next failure (`_renew_cache`) or unit of work."""
        self._hook.schema += 1
        sa_compat.invalidate_schema_cache(self._sql_dialect)

    async def _renew_cache(self, fairy: Any, driver: Any, error: BaseException) -> bool:
        """After ``error``, whether to run the statement once more on this connection:
        the server found a cached plan invalid (asyncpg has dropped this connection's
        statements; the schema changed for every connection), or asyncpg refused an
        argument for a statement prepared before the last known schema change (its
        parameter types may be the old ones: the cache is dropped first)."""
        info = fairy.info
        if isinstance(
            error, (asyncpg.InvalidCachedStatementError, asyncpg.OutdatedSchemaCacheError)
        ):
            self.schema_changed()
            info[_SCHEMA] = self._hook.schema
            # an outdated schema cache is found after the statement ran: never again
            return isinstance(error, asyncpg.InvalidCachedStatementError)
        if _refused_argument(error) and info.get(_SCHEMA, _UNCHANGED) != self._hook.schema:
            await driver.reload_schema_state()
            info[_SCHEMA] = self._hook.schema
            return True
        return False

    async def _fresh_cache(self, fairy: Any, driver: Any) -> None:
        """Before a unit of work: drop the connection's cached statements if the schema
        changed since they were prepared (a unit cannot run a statement twice)."""
        info = fairy.info
        epoch = self._hook.schema
        if info.get(_SCHEMA, _UNCHANGED) != epoch:
            await driver.reload_schema_state()
            info[_SCHEMA] = epoch

    async def _check_in(self, pool: Pool, fairy: Any) -> None:
        """Give ``fairy`` back to ``pool``: at once, or in SQLAlchemy's greenlet when the
        return may await (`blockmon._compat.sqlalchemy.closes_at_return`: a disposed
        pool, another library's checkin or reset listener, an overflow connection to
        close). That return runs to its end even if the caller is cancelled meanwhile
        (`blockmon.finish`), as SQLAlchemy's ``AsyncConnection`` closes: cut short, an
        overflow connection's close is logged by the pool as an error. Discarding
        (`_discard`) terminates without awaiting, so needs neither."""
        if sa_compat.closes_at_return(pool, self.engine.sync_engine.pool):
            await finish_first(sa_compat.in_greenlet(fairy.close))
        else:
            fairy.close()

    def _discard(self, pool: Pool, fairy: Any, driver: Any, error: BaseException) -> None:
        """Never hand ``fairy`` out again (cancelled mid-statement, a timeout, a broken
        connection). A lost connection (the server ended the session) is logged as such
        and, as on SQLAlchemy's path, every connection of the pool opened before it is
        reopened at its next checkout."""
        if isinstance(error, Exception) and lost_connection(error, driver):
            sa_compat.invalidate_pool(pool, fairy, error)
            lost = self._hook.lost
            if lost is not None:
                lost(error)
        else:
            fairy.invalidate(error)

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
        sql, names = positional(self._sql_dialect, statement)
        if _many(params):
            rows = [_arguments(names, p) for p in params]
            if rows:
                await self._on_driver(lambda c: c.executemany(sql, rows), sql, operation)
            return -1
        args = _arguments(names, params)
        status: str = await self._on_driver(lambda c: c.execute(sql, *args), sql, operation)
        last = status.rpartition(" ")[2]
        if last.isdigit():
            return int(last)
        if status.startswith(_DDL):
            self.schema_changed()
        return 0

    @overload
    async def fetch_all(
        self, statement: str, params: Params = None, *, operation: str | None = None
    ) -> list[Record]: ...
    @overload
    async def fetch_all(
        self,
        statement: TypedReturnsRows[*_Ts],
        params: Params = None,
        *,
        operation: str | None = None,
    ) -> Sequence[Row[*_Ts]]: ...
    @overload
    async def fetch_all(
        self, statement: Executable, params: Params = None, *, operation: str | None = None
    ) -> Sequence[Row[*TupleAny]]: ...
    async def fetch_all(
        self, statement: Statement, params: Params = None, *, operation: str | None = None
    ) -> Sequence[Any]:
        """Every row: `Record`s for SQL strings, SQLAlchemy Rows for Executables."""
        if not isinstance(statement, str):
            async with self._core.begin() as conn:
                return (
                    await conn.execute(statement, params, execution_options=_named(operation))
                ).all()
        sql, names = positional(self._sql_dialect, statement)
        args = _arguments(names, params)
        rows: list[Any] = await self._on_driver(
            lambda c: c.fetch(sql, *args, record_class=Record), sql, operation
        )
        return rows

    @overload
    async def fetch_one(
        self, statement: str, params: Params = None, *, operation: str | None = None
    ) -> Record | None: ...
    @overload
    async def fetch_one(
        self,
        statement: TypedReturnsRows[*_Ts],
        params: Params = None,
        *,
        operation: str | None = None,
    ) -> Row[*_Ts] | None: ...
    @overload
    async def fetch_one(
        self, statement: Executable, params: Params = None, *, operation: str | None = None
    ) -> Row[*TupleAny] | None: ...
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
        sql, names = positional(self._sql_dialect, statement)
        args = _arguments(names, params)
        return await self._on_driver(
            lambda c: c.fetchrow(sql, *args, record_class=Record), sql, operation
        )

    @overload
    async def scalar(
        self, statement: str, params: Params = None, *, operation: str | None = None
    ) -> Any: ...
    @overload
    async def scalar(
        self, statement: TypedReturnsRows[T], params: Params = None, *, operation: str | None = None
    ) -> T | None: ...
    @overload
    async def scalar(
        self, statement: Executable, params: Params = None, *, operation: str | None = None
    ) -> Any: ...
    async def scalar(
        self, statement: Statement, params: Params = None, *, operation: str | None = None
    ) -> Any:
        """The first column of the first row, or None: typed by a typed SQLAlchemy
        construct (``select(Table.c.id)``), Any for a SQL string."""
        if not isinstance(statement, str):
            async with self._core.begin() as conn:
                return (
                    await conn.execute(statement, params, execution_options=_named(operation))
                ).scalar()
        sql, names = positional(self._sql_dialect, statement)
        args = _arguments(names, params)
        return await self._on_driver(lambda c: c.fetchval(sql, *args), sql, operation)

    def transaction(
        self,
        isolation: str | None = None,
        *,
        read_only: bool = False,
        readonly: bool | None = None,
    ) -> AbstractAsyncContextManager[StatementTransaction]:
        """``async with db.transaction() as tx:`` one connection, one BEGIN, the
        statements, one COMMIT; ROLLBACK when the block raises. A block cancelled while a
        statement runs, or a broken connection, discards the connection instead.
        ``readonly`` is the deprecated spelling of ``read_only``."""
        if readonly is not None:
            deprecated("Statements.transaction(readonly=)", "read_only=")
            read_only = readonly
        return self._transaction(begin_statement(isolation, read_only=read_only))

    @asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[StatementTransaction]:
        pool = self.engine.sync_engine.pool
        gate = await self._admit(pool)
        try:
            fairy = await self._connection()
            driver: Any = fairy.driver_connection
            tx = StatementTransaction(self, driver)
            try:
                try:
                    if self._hook.schema:  # the schema changed under cached statements
                        await self._fresh_cache(fairy, driver)
                    await driver.execute(begin)
                except BaseException as error:
                    tx.clean = keeps_connection(error, driver)
                    raise
                yield tx
            except BaseException as error:
                if isinstance(error, Exception) and tx.clean:
                    await self._roll_back(pool, fairy, driver, error)
                else:  # cancelled, or a statement was cut off: the server rolls back
                    self._discard(pool, fairy, driver, error)
                raise
            started = perf_counter()
            try:
                await driver.execute("COMMIT")
            except BaseException as error:  # only a failed COMMIT is a query in the metrics
                observer = self._hook.observer
                if observer is not None:
                    observer("COMMIT", None, perf_counter() - started, error)
                if keeps_connection(error, driver):
                    # the server ended the transaction (e.g. 40001 at COMMIT)
                    await self._check_in(pool, fairy)
                else:
                    self._discard(pool, fairy, driver, error)
                raise
            await self._check_in(pool, fairy)
        finally:
            if gate is not None:
                gate.release()

    def run_transaction(
        self,
        work: Callable[[StatementTransaction], Awaitable[T]],
        *,
        isolation: str | None = None,
        read_only: bool = False,
        attempts: int = 3,
        backoff: float = 0.02,
        readonly: bool | None = None,
    ) -> Coroutine[Any, Any, T]:
        """Run ``work(tx)`` in `transaction`, re-running it from the start on 40001/40P01
        up to ``attempts`` times in all. ``work`` must be safe to repeat: it may only touch
        the database through ``tx``. ``readonly`` is the deprecated spelling of
        ``read_only``."""
        if readonly is not None:
            deprecated("Statements.run_transaction(readonly=)", "read_only=")
            read_only = readonly
        begin = begin_statement(isolation, read_only=read_only)  # a bad one fails here

        async def unit() -> T:
            async with self._transaction(begin) as tx:
                return await work(tx)

        return retrying(unit, attempts, backoff)

    async def _roll_back(self, pool: Pool, fairy: Any, driver: Any, error: BaseException) -> None:
        """ROLLBACK after ``error`` left a transaction open; a connection that cannot roll
        back is discarded. A cancellation (or timeout) arriving meanwhile is what
        propagates, never ``error`` in its place."""
        try:
            await driver.execute("ROLLBACK")
        except BaseException as failure:
            self._discard(pool, fairy, driver, failure)
            if not isinstance(failure, Exception):
                raise
            raise error from None
        await self._check_in(pool, fairy)


def lost_connection(error: Exception, driver: Any) -> bool:
    """Whether ``error`` means the server session is gone: asyncpg's connection errors
    (``ConnectionDoesNotExistError`` is a `PostgresError` too), a FATAL from the server
    (``pg_terminate_backend``: 57P01), or a connection asyncpg has closed."""
    return (
        isinstance(error, (asyncpg.PostgresConnectionError, OSError, ConnectionError))
        or (isinstance(error, PostgresError) and error.sqlstate in _FATAL)
        or driver.is_closed()
    )


# admin shutdown (pg_terminate_backend), crash shutdown, cannot connect now
_FATAL = frozenset({"57P01", "57P02", "57P03"})


def keeps_connection(error: BaseException, driver: Any) -> bool:
    """Whether the connection stays usable after ``error``: the server refused the
    statement (a `PostgresError` of the statement, not of the session), or asyncpg
    refused an argument before sending anything (its client-side ``DataError``, an
    ``InterfaceError`` and ``ValueError``). Never after a cancellation, a timeout or a
    lost connection."""
    if isinstance(error, asyncpg.OutdatedSchemaCacheError):
        return not driver.is_closed()  # asyncpg has reloaded its schema state
    if not isinstance(error, (PostgresError, asyncpg.InterfaceError)):
        return False
    if lost_connection(error, driver):
        return False
    return isinstance(error, (PostgresError, ValueError))


def _refused_argument(error: BaseException) -> bool:
    """asyncpg refused a value for a ``$n`` before sending the statement (a `DataError`
    raised from the encoder's TypeError/ValueError)."""
    return isinstance(error, (asyncpg.DataError, asyncpg.InterfaceError)) and isinstance(
        error.__cause__, (TypeError, ValueError, OverflowError)
    )


_SCHEMA = "blockmon_schema"  # record.info: the schema epoch the connection's cache is of
_UNCHANGED = 0


class StatementTransaction:
    """The statements of one `Statements.transaction`: SQL strings with ``:name``
    parameters, run on its connection, reported to the query metrics as Statements do.
    (`Transactions` hands out SQLAlchemy sessions instead.)"""

    __slots__ = ("_driver", "_observer", "_sql_dialect", "_statements", "clean")

    def __init__(self, statements: Statements, driver: Any) -> None:
        self._statements = statements
        self._driver = driver
        self._sql_dialect = statements._sql_dialect
        self._observer = statements._hook.observer
        self.clean = True  # False once a statement was cut off or the connection broke

    def run(
        self,
        method: Callable[..., Awaitable[T]],
        sql: str,
        args: Sequence[Any],
        operation: str | None,
        **options: Any,
    ) -> Coroutine[Any, Any, T]:
        """Deprecated: an internal step, never meant for users (use `execute`, `fetch_all`,
        `fetch_one` or `scalar`)."""
        deprecated("StatementTransaction.run()", "execute(), fetch_all(), fetch_one() or scalar()")
        return self._run(method, sql, args, operation, **options)

    async def _run(
        self,
        method: Callable[..., Awaitable[T]],
        sql: str,
        args: Sequence[Any],
        operation: str | None,
        **options: Any,
    ) -> T:
        """``await method(sql, *args)``, timed for the metrics when they are installed."""
        if not self.clean:
            raise asyncpg.InterfaceError("transaction: its connection was lost; start another")
        observer = self._observer
        started = perf_counter() if observer is not None else 0.0
        try:
            result = await method(sql, *args, **options)
        except BaseException as error:
            if not keeps_connection(error, self._driver):
                self.clean = False
            elif isinstance(error, asyncpg.InvalidCachedStatementError):
                self._statements.schema_changed()  # run_transaction re-runs the unit
            if observer is not None:
                observer(sql, operation, perf_counter() - started, error)
            raise
        if observer is not None:
            observer(sql, operation, perf_counter() - started, None)
        return result

    def _sql(self, statement: Any) -> tuple[str, tuple[str, ...]]:
        if type(statement) is not str and not isinstance(statement, str):
            raise TypeError(
                "transaction: statements are SQL strings; run SQLAlchemy constructs "
                "through Transactions (an AsyncSession)"
            )
        return positional(self._sql_dialect, statement)

    async def execute(
        self, statement: str, params: ManyParams = None, *, operation: str | None = None
    ) -> int:
        """Run a statement; the affected row count (0 when none is reported). With a
        sequence of parameter sets, run it once per set (pipelined) and return -1."""
        sql, names = self._sql(statement)
        if _many(params):
            rows = [_arguments(names, p) for p in params]
            if rows:
                await self._run(self._driver.executemany, sql, (rows,), operation)
            return -1
        status: str = await self._run(
            self._driver.execute, sql, _arguments(names, params), operation
        )
        last = status.rpartition(" ")[2]
        if last.isdigit():
            return int(last)
        if status.startswith(_DDL):
            self._statements.schema_changed()
        return 0

    async def fetch_all(
        self, statement: str, params: Params = None, *, operation: str | None = None
    ) -> list[Record]:
        """Every row, as `Record`s."""
        sql, names = self._sql(statement)
        rows: list[Record] = await self._run(
            self._driver.fetch, sql, _arguments(names, params), operation, record_class=Record
        )
        return rows

    async def fetch_one(
        self, statement: str, params: Params = None, *, operation: str | None = None
    ) -> Record | None:
        """The first row or None."""
        sql, names = self._sql(statement)
        row: Record | None = await self._run(
            self._driver.fetchrow, sql, _arguments(names, params), operation, record_class=Record
        )
        return row

    async def scalar(
        self, statement: str, params: Params = None, *, operation: str | None = None
    ) -> Any:
        """The first column of the first row, or None."""
        sql, names = self._sql(statement)
        return await self._run(self._driver.fetchval, sql, _arguments(names, params), operation)


def __getattr__(name: str) -> Any:
    """The names this module had before 0.2.0, deprecated."""
    if name == "Transaction":
        deprecated("blockmon.postgres.statements.Transaction", "blockmon.StatementTransaction")
        return StatementTransaction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
