"""Request-scoped sessions for FastAPI routes: ``session: WriteSession`` commits when the
route returns, rolls back when it raises, and is closed after it; ``ReadSession`` reads
from a replica when ``postgres.replicas`` names some, else from the primary.

The container is the one ``FastAPI(lifespan=Lifespan(container))`` was given, also when
the lifespan has not run (httpx's ASGITransport on a container started elsewhere).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from blockmon.errors import UsageError
from blockmon.lifespan import Lifespan, blockmon_container

__all__ = ["ReadSession", "WriteSession", "read_session", "write_session"]


def _postgres(app: Any) -> Any:
    container = getattr(app.state, "blockmon", None)
    if container is None:
        lifespan = getattr(getattr(app, "router", None), "lifespan_context", None)
        if isinstance(lifespan, Lifespan):
            container = blockmon_container(lifespan.container)
    if container is None:
        raise UsageError(
            "no blockmon container for this app: create it with "
            "FastAPI(lifespan=Lifespan(container))"
        )
    return container.postgres


async def write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session on the primary in a transaction: committed on success, rolled back on
    an exception, closed after the route."""
    sessions = await _postgres(request.app).sessions()
    async with sessions.write() as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session on a healthy replica (the primary when there is none), closed after."""
    sessions = await _postgres(request.app).sessions()
    async with sessions.read() as session:
        yield session


WriteSession = Annotated[AsyncSession, Depends(write_session)]
ReadSession = Annotated[AsyncSession, Depends(read_session)]
