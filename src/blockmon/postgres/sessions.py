"""Request-scoped ORM sessions, as web frameworks' dependencies hand them out: ``write()``
on the primary in a transaction (committed on success, rolled back on an exception,
closed after), ``read()`` on a healthy replica when there is one, else the primary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blockmon.postgres.replicas import Router


class Sessions:
    """``async with sessions.write() as session:`` / ``sessions.read()``; without a
    router, reads use ``read_factory`` (by default ``session_factory``)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        router: Router | None = None,
        *,
        read_factory: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.router = router
        self.read_factory = read_factory or session_factory

    def __repr__(self) -> str:
        return f"Sessions(router={self.router!r})"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Committed when the block ends, rolled back when it raises; the block may
        commit on its own too (and go on: the session begins again)."""
        async with self.session_factory() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        if self.router is None:
            async with self.read_factory() as session:
                yield session
            return
        async with self.router.read_session() as session:
            yield session
