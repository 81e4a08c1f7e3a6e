"""Cleanup that a cancellation does not cut short: it finishes, then the cancellation
goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish_first(work: Awaitable[T]) -> T:
    """Await ``work`` in a task of its own; a cancellation meanwhile waits for it to end
    and is re-raised after, over whatever ``work`` raised (SQLAlchemy's own async
    context managers close this way). Cut short, a connection's close is logged by
    SQLAlchemy's pool as an error and Resources half-started cannot be shut down; so
    ``work`` must be bounded (a close or a connect timeout)."""
    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError as error:
            cancelled = error
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved (not logged by the loop): the cancellation wins
        raise cancelled
    return task.result()
