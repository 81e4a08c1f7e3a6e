"""Draining on SIGTERM/SIGINT: readiness fails at once, the server stops accepting only
``monitoring.shutdown_delay`` seconds later (a load balancer needs a few failed health
checks to take the instance out), and a second signal skips what is left of the waits.

`SignalDrain` holds that sequence; what "stop" means is the caller's: blockmon's own
server stops serving (`blockmon.monitoring.server`), an application's server (uvicorn,
gunicorn's uvicorn worker) gets the signal it would have had (`delay_signals`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from blockmon.config.log import get_logger
from blockmon.monitoring.readiness import Readiness

_log = get_logger("blockmon.shutdown")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
Stop = Callable[[int, bool], None]  # (signal number, hurry: a second signal came)


class SignalDrain:
    """``handle`` is the signal handler: it may run between any two bytecodes, so it only
    flips readiness (an assignment) and hands the rest to the event loop."""

    def __init__(self, readiness: Readiness, delay: float, stop: Stop) -> None:
        self.readiness = readiness
        self.delay = delay
        self.stop = stop
        self.signals = 0
        self.started: float | None = None  # time.monotonic() of the first signal
        self.first: int | None = None  # its number
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.readiness.shutting_down()
        self._loop.call_soon_threadsafe(self._received, signum)

    def _received(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            self.started, self.first = time.monotonic(), signum
            _log.info(
                f"shutdown: {name}: readiness fails from now; serving {self.delay:g} s more",
                signal=name,
                delay=self.delay,
            )
            self._timer = self._loop.call_later(self.delay, self._stop, signum, False)
        elif self.signals == 2:
            _log.warning(f"shutdown: second signal ({name}): not waiting any longer", signal=name)
            self._stop(signum, True)

    def _stop(self, signum: int, hurry: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not hurry:
            _log.info("shutdown: delay over; stopping the server", delay=self.delay)
        self.stop(signum, hurry)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@contextlib.contextmanager
def delay_signals(readiness: Readiness, delay: float) -> Iterator[SignalDrain | None]:
    """For an application served by uvicorn or gunicorn: SIGTERM/SIGINT make ``readiness``
    fail at once and reach the handler installed before (the server's) ``delay`` seconds
    later; a second signal reaches it at once. Handlers are restored on exit. Outside the
    main thread (where signals cannot be handled) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def forward(signum: int, hurry: bool) -> None:
        handler = previous[signum]
        if callable(handler):
            handler(signum, None)
            return
        # the default action (nothing, if it was ignored)
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        signal.raise_signal(signum)

    drain = SignalDrain(readiness, delay, forward)
    for sig in SIGNALS:
        signal.signal(sig, drain.handle)
    try:
        yield drain
    finally:
        drain.cancel()
        for number, handler in previous.items():
            if signal.getsignal(number) == drain.handle:  # not when the server restored its own
                signal.signal(number, handler)
