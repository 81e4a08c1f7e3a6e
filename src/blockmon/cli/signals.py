"""SIGINT and SIGTERM at any moment of ``blockmon up`` / ``serve`` stop what the command
started and exit 0.

The default actions would not: SIGTERM kills the process on the spot (embedded servers
keep running), and SIGINT raises KeyboardInterrupt wherever the code happens to be,
possibly between starting an embedded server and recording that it did. Here a signal
only cancels the command's main task, once; its ``finally`` blocks then stop what was
started. A blocking step in progress (an embedded server starting) completes first, so
what it started is known and stopped. While the server serves, its handlers take over
(a drain: `blockmon.monitoring.drain`) and hand back after; a signal that stopped the
server counts as this one, so a later one cannot cut the clean-up short either.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from types import FrameType, TracebackType
from typing import Any

from blockmon.cli.loop import run

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """``with StopOnSignal() as stop: ... return stop.run(main())``: 0 on a signal."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def run(self, main: Coroutine[Any, Any, int]) -> int:
        """Run ``main`` on the event loop; 0 if a signal stopped it (or came before)."""

        async def guarded() -> int:
            if self.received is not None:  # before the loop started: nothing to undo
                main.close()
                return 0
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            return await main

        try:
            return run(guarded())
        except asyncio.CancelledError:
            if self.received is None:
                raise
            return 0
        finally:
            self._task = self._loop = None

    def stopping(self, signum: int | None) -> None:
        """``signum`` (when not None) was handled by someone else (the server's drain):
        the command is stopping, and later signals are ignored as if this one came here."""
        if signum is not None and self.received is None:
            self.received = signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already stopping: a second signal must not cut the clean-up short
        self.received = signum
        if self._task is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
