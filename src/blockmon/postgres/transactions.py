"""Units of work: commit on success, roll back on error, and re-run the whole unit
when PostgreSQL reports a serialization failure (40001) or a deadlock (40P01).

`Transactions` runs them on SQLAlchemy sessions (for ORM code); the same retry loop,
`retrying`, runs `blockmon.postgres.statements.Statements.run_transaction` on the raw
driver."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from asyncpg import InvalidCachedStatementError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blockmon.config.log import get_logger

T = TypeVar("T")
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_log = get_logger("blockmon.transactions")


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
    """Runs units of work on sessions from ``session_factory``."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    @asynccontextmanager
    async def begin(self, isolation_level: str | None = None) -> AsyncIterator[AsyncSession]:
        """``async with tx.begin() as session:`` commits on success, rolls back on error."""
        async with self.session_factory() as session, session.begin():
            if isolation_level is not None:
                # Inside begin(): connection() here takes the options before any statement.
                await session.connection(execution_options={"isolation_level": isolation_level})
            yield session

    async def run(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        isolation_level: str | None = None,
        attempts: int = 3,
        backoff: float = 0.02,
    ) -> T:
        """Run ``work(session)`` in a transaction, re-running it from the start on
        40001/40P01 up to ``attempts`` times in all. ``work`` must be safe to repeat:
        it may only touch the database through ``session``."""

        async def unit() -> T:
            async with self.begin(isolation_level) as session:
                return await work(session)

        return await retrying(unit, attempts, backoff)
