"""The monitoring server's defence against connections that never finish a request:
a deadline for the request head, and a cap on open connections that sheds the one
idle the longest first, so ``/livez`` keeps answering while a scanner holds sockets.

uvicorn has no header timeout and no connection cap (its ``limit_concurrency`` answers
503, which a liveness probe counts as a failure), so this subclasses its h11 protocol.
The protocol's attributes used here (``cycle``, ``transport``, ``loop`` and the
``connection_made`` / ``data_received`` / ``on_response_complete`` /
``connection_lost`` hooks) are uvicorn internals: they are used in this module only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from blockmon.config.log import get_logger

_log = get_logger("blockmon.monitoring")


@dataclass(eq=False)
class ConnectionGuard:
    """Open connections of one server, idle ones in the order they became idle."""

    limit: int
    header_timeout: float
    idle: dict[Any, None] = field(default_factory=dict)  # insertion order: oldest idle first
    busy: set[Any] = field(default_factory=set)
    shed: int = 0
    shedding: bool = False

    @property
    def open(self) -> int:
        return len(self.idle) + len(self.busy)

    def opened(self, conn: Any) -> None:
        self.idle[conn] = None
        while self.open > self.limit and self.idle:
            oldest = next(iter(self.idle))
            del self.idle[oldest]
            oldest.transport.close()
            self.shed += 1
            if not self.shedding:
                self.shedding = True
                _log.warning(
                    "monitoring: too many connections, closing the longest idle ones",
                    limit=self.limit,
                )

    def became_busy(self, conn: Any) -> None:
        if conn in self.idle:
            del self.idle[conn]
            self.busy.add(conn)

    def became_idle(self, conn: Any) -> None:
        if conn in self.busy:
            self.busy.discard(conn)
            self.idle[conn] = None

    def closed(self, conn: Any) -> None:
        self.idle.pop(conn, None)
        self.busy.discard(conn)
        if self.shedding and self.open <= self.limit * 9 // 10:
            self.shedding = False
            _log.warning(
                "monitoring: connections back under the limit, no longer shedding",
                open=self.open,
                limit=self.limit,
                shed=self.shed,
            )
            self.shed = 0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, registered with a `ConnectionGuard`, closing a connection
    whose request head has not arrived ``header_timeout`` after it opened or went idle."""

    guard: ClassVar[ConnectionGuard]
    _deadline: asyncio.TimerHandle | None = None

    @classmethod
    def bound(cls, guard: ConnectionGuard) -> type[GuardedH11Protocol]:
        """A protocol class for one server (uvicorn instantiates the class itself)."""
        return type("GuardedH11Protocol", (cls,), {"guard": guard})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        self.guard.opened(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.closed(self)
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Busy from a complete request head until its response is sent."""
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()
            self.guard.became_busy(self)
        elif self._deadline is None:
            self._arm()
            self.guard.became_idle(self)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.guard.header_timeout, self.transport.close)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
