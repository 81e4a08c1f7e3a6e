"""Following ``engine.dispose()`` on SQLAlchemy's public ground: the pool class blockmon's
engines are built with (``poolclass=``) tells its followers when ``dispose()`` puts a
new pool in its place (``Pool.recreate``); an engine built elsewhere is followed through
the ``engine_disposed`` event, a ConnectionEvents listener that costs every checkout
about 100 Python calls (``python bench/run.py --only compat``, docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool, QueuePool

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.postgres.closing import wait_for_closes

Follower = Callable[[Pool, Pool], None]  # (the replaced pool, the new one)


class FollowedPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio QueuePool whose ``recreate()`` (what ``engine.dispose()``
    calls for the new pool) hands its followers to the new pool and tells them, and whose
    ``dispose()`` returns once the connections it closed are closed (each close runs in a
    task of its own: `blockmon.postgres.closing`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.followers: list[Follower] = []  # shared by every pool recreated from this one
        self.closes_through: Dialect | None = kwargs.get("dialect")  # create_engine's

    def dispose(self) -> None:
        super().dispose()
        wait_for_closes(self.closes_through)

    def recreate(self) -> QueuePool:
        new = super().recreate()
        if isinstance(new, FollowedPool):
            new.followers = self.followers
        for follower in tuple(self.followers):
            follower(self, new)
        return new


sa_compat.log_as(FollowedPool, AsyncAdaptedQueuePool)


def follow_dispose(engine: Engine, after: Follower) -> Callable[[], None]:
    """Call ``after(old_pool, new_pool)`` each time ``engine.dispose()`` replaces the
    engine's pool; returns the undo."""
    pool = engine.pool
    if isinstance(pool, FollowedPool):
        followers = pool.followers
        followers.append(after)

        def unfollow() -> None:
            if after in followers:
                followers.remove(after)

        return unfollow
    replaced = [pool]  # the engine's pool before the next dispose()

    def disposed(engine: Engine) -> None:
        old, replaced[0] = replaced[0], engine.pool
        after(old, engine.pool)

    event.listen(engine, "engine_disposed", disposed)
    return lambda: event.remove(engine, "engine_disposed", disposed)
