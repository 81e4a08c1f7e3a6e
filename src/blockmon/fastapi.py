"""Request-scoped sessions for FastAPI routes: ``session: WriteSession`` commits when the
route returns, rolls back when it raises, and is closed after it; ``ReadSession`` reads
from a replica when ``postgres.replicas`` names some, else from the primary.

The container is the one ``FastAPI(lifespan=Lifespan(container))`` starts, recorded on
``app.state.blockmon`` when the lifespan runs; `attach` records it without the lifespan
(httpx's ASGITransport on a container started elsewhere, as tests do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from blockmon.errors import UsageError
from blockmon.lifespan import blockmon_container

__all__ = ["ReadSession", "WriteSession", "attach", "read_session", "write_session"]


def attach(app: FastAPI, container: Any) -> None:
    """Give ``app``'s routes the sessions of ``container`` (yours holding blockmon, or
    blockmon's own); ``Lifespan(container)`` does the same when the app starts."""
    found = blockmon_container(container)
    if found is None:
        raise UsageError(f"attach: no blockmon ApplicationContainer in {container!r}")
    app.state.blockmon = found


def _postgres(app: Any) -> Any:
    container = getattr(app.state, "blockmon", None)
    if container is None:
        raise UsageError(
            "no blockmon container for this app: start it with "
            "FastAPI(lifespan=Lifespan(container)), or call "
            "blockmon.fastapi.attach(app, container) where its lifespan does not run"
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
