"""The first-come first-served gate in front of a connection pool (`Statements` on the
engine's pool, the Redis client's pool): as many permits as the pool has connections,
and one timer for all its waiters.

A pool's own queue lets a caller that just gave a connection back take it again at
once, so a waiter can be passed over until it times out; here a released permit is
handed to the first waiter. Every waiter waits at most the pool's timeout, so deadlines
come in queue order and only the first waiter's needs a timer: asyncio's ``Semaphore``
under ``asyncio.timeout`` arms and cancels one per waiter (8.3 µs of CPU per contended
acquire against 2.9 µs here, 32 callers on 10 permits: docs/performance.md).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque


class Gate:
    """``await gate.acquire()`` is True once a permit is held, False when none came
    within ``timeout`` seconds (None: wait as long as it takes); ``gate.release()``
    gives it back."""

    __slots__ = ("_permits", "_timer", "_waiters", "timeout")

    def __init__(self, permits: int, timeout: float | None) -> None:
        self._permits = permits
        self.timeout = timeout
        self._waiters: deque[tuple[asyncio.Future[bool], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def locked(self) -> bool:
        """Whether `acquire` would wait."""
        return not self._permits

    async def acquire(self) -> bool:
        if self._permits:
            self._permits -= 1
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        deadline = math.inf if self.timeout is None else loop.time() + self.timeout
        self._waiters.append((waiter, deadline))
        if self._timer is None and deadline != math.inf:
            self._arm(loop)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # handed a permit as it was cancelled: pass it on
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()[0]
            if not waiter.done():
                waiter.set_result(True)
                return
        self._permits += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = self._waiters[0][1]
        self._timer = loop.call_at(deadline, self._expire, loop, deadline)

    def _expire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Fail every waiter whose deadline is ``deadline`` or earlier; re-arm for the next."""
        self._timer = None
        waiters = self._waiters
        while waiters and waiters[0][1] <= deadline:
            waiter = waiters.popleft()[0]
            if not waiter.done():
                waiter.set_result(False)
        if waiters:
            self._arm(loop)
