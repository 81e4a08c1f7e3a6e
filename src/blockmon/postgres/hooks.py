"""The observation point of the fast Statements path.

SQL strings run by `blockmon.postgres.statements.Statements` go straight to asyncpg and never
reach SQLAlchemy's cursor events, so query metrics could not see them. Each engine gets
one `StatementHook`; Statements reads its ``observer`` once per statement and, when one
is set, calls it once with the SQL text, the caller's operation name (or None), the
duration and the error (or None). With no observer the path neither reads a clock nor
allocates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

OPERATION_OPTION = "blockmon_operation"


class StatementObserver(Protocol):
    def __call__(
        self, sql: str, operation: str | None, elapsed: float, error: BaseException | None
    ) -> None: ...


class WaitObserver(Protocol):
    """Counts callers queued in front of the pool (see `blockmon.metrics.pool.PoolWatch`)."""

    waiting: int
    exhausted: bool  # since the first caller waited, until the pool has a free one again

    def wait_started(self) -> None: ...

    def timed_out(self) -> None: ...

    def freed(self) -> None:
        """A connection came back while ``exhausted`` and nobody waits any more."""


class StatementHook:
    """The slots one engine's Statements call through; each is None when unused."""

    __slots__ = ("checkout", "lost", "observer", "schema", "waits")

    def __init__(self) -> None:
        self.observer: StatementObserver | None = None
        self.waits: WaitObserver | None = None
        # told when a statement finds its server session gone (the connection-state log)
        self.lost: Callable[[BaseException], None] | None = None
        # bumped when Statements see the schema change under cached statements (DDL they
        # ran, a cached plan the server found invalid): connections re-prepare
        self.schema = 0
        # the pool guard's checkout without a greenlet (`blockmon.postgres.pool`): a
        # connection, or None when this checkout could have to wait, connect or ping
        self.checkout: Callable[[], Any] | None = None


_hooks: WeakKeyDictionary[Engine, StatementHook] = WeakKeyDictionary()


def hook_for(engine: AsyncEngine | Engine) -> StatementHook:
    """The hook of ``engine`` (made on first use, whichever side asks first)."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    hook = _hooks.get(sync)
    if hook is None:
        hook = _hooks[sync] = StatementHook()
    return hook
