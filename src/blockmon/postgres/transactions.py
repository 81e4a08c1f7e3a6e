"""Units of work: commit on success, roll back on error, and re-run the whole unit
when PostgreSQL reports a serialization failure (40001) or a deadlock (40P01).

`Transactions` runs them on SQLAlchemy sessions (for ORM code); the same retry loop,
`retrying`, and the same words (`transaction(isolation=, read_only=)`,
`run_transaction(work, attempts=, backoff=)`, `sql_isolation`) serve
`blockmon.postgres.statements.Statements` on the raw driver."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from asyncpg import InvalidCachedStatementError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blockmon.config.deprecation import deprecated
from blockmon.config.log import get_logger

T = TypeVar("T")
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_log = get_logger("blockmon.transactions")


_ISOLATION = {
    "read_committed": "READ COMMITTED",
    "repeatable_read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}


def sql_isolation(isolation: str | None) -> str | None:
    """The SQL words for ``isolation`` ("read_committed", "repeatable_read",
    "serializable", any case, spaces allowed), or None (the server's default); a
    ValueError naming ``isolation`` for anything else."""
    if isolation is None:
        return None
    level = _ISOLATION.get(isolation.strip().lower().replace(" ", "_"))
    if level is None:
        raise ValueError(f"isolation: must be one of {', '.join(_ISOLATION)}, got {isolation!r}")
    return level


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE behind a SQLAlchemy or asyncpg error, if any."""
    orig = error.orig if isinstance(error, DBAPIError) else error
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None)
        if isinstance(code, str):
            return code
    cause = getattr(orig, "__cause__", None)
    return getattr(cause, "sqlstate", None) if cause is not None else None


def is_retryable(error: BaseException) -> bool:
    """40001, 40P01, and a cached plan the server found invalid after DDL changed a
    result type (``InvalidCachedStatementError``: the connection has dropped its cached
    statements, so the unit re-run prepares them again)."""
    return sqlstate(error) in RETRYABLE_SQLSTATES or _invalid_cached_plan(error)


def _invalid_cached_plan(error: BaseException) -> bool:
    """asyncpg's ``InvalidCachedStatementError``, raw or as SQLAlchemy wraps it."""
    orig = error.orig if isinstance(error, DBAPIError) else error
    return isinstance(orig, InvalidCachedStatementError) or isinstance(
        getattr(orig, "__cause__", None), InvalidCachedStatementError
    )


async def retrying(unit: Callable[[], Awaitable[T]], attempts: int, backoff: float) -> T:
    """Await ``unit()``, again from the start on 40001/40P01, up to ``attempts`` times in
    all, sleeping ``backoff`` x 2^(attempt-1) x [0.5, 1.5) in between."""
    if attempts < 1:
        raise ValueError(f"attempts: must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return await unit()
        except Exception as error:
            if attempt == attempts or not is_retryable(error):
                raise
            _log.info(
                "transaction retried",
                sqlstate=sqlstate(error),
                attempt=attempt,
                attempts=attempts,
            )
            await asyncio.sleep(backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
    raise AssertionError("unreachable")


class Transactions:
    """Runs units of work on sessions from ``session_factory``: `transaction` for a
    block, `run_transaction` for a unit re-run on conflicts (the same names and
    parameters as `blockmon.postgres.statements.Statements`)."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    @asynccontextmanager
    async def transaction(
        self, isolation: str | None = None, *, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """``async with tx.transaction() as session:`` commits on success, rolls back on
        error. ``isolation``: see `sql_isolation`; ``read_only``: ``READ ONLY``."""
        options: dict[str, Any] = {}
        level = sql_isolation(isolation)
        if level is not None:
            options["isolation_level"] = level
        if read_only:
            options["postgresql_readonly"] = True
        async with self._begun(options) as session:
            yield session

    @asynccontextmanager
    async def _begun(self, options: dict[str, Any]) -> AsyncIterator[AsyncSession]:
        async with self.session_factory() as session, session.begin():
            if options:
                # Inside begin(): connection() here takes the options before any statement.
                await session.connection(execution_options=options)
            yield session

    async def run_transaction(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        isolation: str | None = None,
        read_only: bool = False,
        attempts: int = 3,
        backoff: float = 0.02,
    ) -> T:
        """Run ``work(session)`` in `transaction`, re-running it from the start on
        40001/40P01 up to ``attempts`` times in all. ``work`` must be safe to repeat:
        it may only touch the database through ``session``."""
        sql_isolation(isolation)  # a bad isolation fails before any work

        async def unit() -> T:
            async with self.transaction(isolation, read_only=read_only) as session:
                return await work(session)

        return await retrying(unit, attempts, backoff)

    def begin(
        self, isolation_level: str | None = None
    ) -> AbstractAsyncContextManager[AsyncSession]:
        """Deprecated: `transaction`. ``isolation_level`` is SQLAlchemy's value, as given."""
        deprecated("Transactions.begin()", "Transactions.transaction()")
        return self._begun({} if isolation_level is None else {"isolation_level": isolation_level})

    def run(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        isolation_level: str | None = None,
        attempts: int = 3,
        backoff: float = 0.02,
    ) -> Coroutine[Any, Any, T]:
        """Deprecated: `run_transaction`."""
        deprecated("Transactions.run()", "Transactions.run_transaction()")
        options = {} if isolation_level is None else {"isolation_level": isolation_level}

        async def unit() -> T:
            async with self._begun(options) as session:
                return await work(session)

        return retrying(unit, attempts, backoff)
