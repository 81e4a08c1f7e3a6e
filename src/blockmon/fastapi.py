"""Request-scoped sessions for FastAPI routes: ``session: WriteSession`` commits when the
route returns and before the response is sent (a commit that fails is the route's error),
rolls back when it raises, and is closed after it; ``ReadSession`` reads
from a replica when ``postgres.replicas`` names some, else from the primary.

The container is the one ``FastAPI(lifespan=Lifespan(container))`` starts, recorded on
``app.state.blockmon`` when the lifespan runs; `attach` records it without the lifespan
(httpx's ASGITransport on a container started elsewhere, as tests do).
"""

from __future__ import annotations

import inspect
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
            "blockmon.fastapi.attach(app, container) where its lifespan does not run "
            "(a FastAPI app mounted in another one, a TestClient not entered with `with`)"
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


def _before_the_response(dependency: Any) -> Any:
    """``Depends`` whose exit runs when the route returns, before the response is sent.

    Since FastAPI 0.118 a ``yield`` dependency ends after the response went out unless
    ``scope="function"`` (0.121) says otherwise: a write session committed there told the
    client 2xx for a commit that then failed (a deferred constraint, a serialization
    failure) and lost the write. Before 0.118 the exit already ran before the response;
    0.118 to 0.120 have no way to ask for it."""
    if "scope" in inspect.signature(Depends).parameters:
        return Depends(dependency, scope="function")
    return Depends(dependency)


# The write session is committed before the response is sent: a commit that fails is the
# route's error (500, or the application's exception handler), never a 2xx.
WriteSession = Annotated[AsyncSession, _before_the_response(write_session)]
ReadSession = Annotated[AsyncSession, Depends(read_session)]
