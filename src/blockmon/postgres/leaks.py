"""Connection leak detection (HikariCP's ``leakDetectionThreshold``): a connection
checked out longer than ``postgres.leak_detection_threshold`` is reported once, with the
stack of the code that took it, and its return is reported too.

The engine's `blockmon.postgres.pool.PoolGuard` calls `LeakDetector.checked_out` and
`LeakDetector.returned` from its one checkout/checkin point when its ``leaks`` slot is
set, so with detection off a checkout costs an attribute read and a None test. On, each
checkout captures the caller's frames (code locations only, never values) and arms one
timer on the event loop, which the checkin cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from time import perf_counter
from types import FrameType
from typing import Any

import asyncpg
import greenlet
import sqlalchemy

from blockmon.config.log import get_logger

_log = get_logger("blockmon.postgres")
LEASE = "blockmon_leak_lease"  # record.info: the `Lease` of the checkout in progress
STACK_LIMIT = 12  # innermost frames of the acquiring code kept
# Frames of these packages are the way to the pool, not the code that asked for it.
_PASSAGE = (
    f"{Path(__file__).parents[1]}/",  # blockmon
    *(f"{Path(str(module.__file__)).parent}/" for module in (sqlalchemy, asyncpg)),
    "<sqlalchemy ",  # the wrappers SQLAlchemy generates (decorators, lambdas)
    str(contextlib.__file__),
)
# A task's coroutines end at the event loop: what called the loop did not take the connection.
_LOOP = f"{Path(asyncio.__file__).parent}/"


def _acquiring_frames(frame: FrameType | None) -> Iterator[tuple[FrameType, int]]:
    """The frames from ``frame`` outwards, past blockmon, SQLAlchemy, asyncpg and
    contextlib, up to the task's first frame. SQLAlchemy's async layer runs the pool in
    a greenlet, whose outermost frame continues in its parent greenlet."""
    current = greenlet.getcurrent()
    while True:
        while frame is None and current.parent is not None:
            current = current.parent
            frame = current.gr_frame
        if frame is None:
            return
        name = frame.f_code.co_filename
        if name.startswith(_LOOP):
            return
        if not name.startswith(_PASSAGE):
            yield frame, frame.f_lineno
        frame = frame.f_back


class Lease:
    """One checkout while detection is on: when, where from, and its timer."""

    __slots__ = ("detector", "reported", "stack", "started", "timer")

    def __init__(self, detector: LeakDetector, started: float, stack: traceback.StackSummary):
        self.detector = detector
        self.started = started
        self.stack = stack
        self.reported = False
        self.timer: asyncio.TimerHandle | None = None

    def where(self) -> str:
        """``file:line`` of the innermost acquiring frame (the statement that took it)."""
        if not self.stack:
            return "unknown"
        first = self.stack[-1]
        return f"{first.filename}:{first.lineno}"

    def report(self) -> None:
        """The threshold passed and the connection is still out: one warning."""
        self.reported = True
        detector = self.detector
        _log.warning(
            "postgres connection held longer than postgres.leak_detection_threshold: "
            "a possible leak",
            pool=detector.pool,
            held_s=round(perf_counter() - self.started, 3),
            threshold_s=detector.threshold,
            acquired_at=self.where(),
            stack="".join(self.stack.format()).rstrip("\n"),
        )
        if detector.on_leak is not None:
            detector.on_leak()


class LeakDetector:
    """One pool's leak detection: the threshold, the pool's name in logs (``primary``,
    ``replica-0``, ...) and ``on_leak``, called once per reported leak (the metrics'
    counter, when installed)."""

    __slots__ = ("on_leak", "pool", "threshold")

    def __init__(self, threshold: float, pool: str) -> None:
        self.threshold = threshold
        self.pool = pool
        self.on_leak: Callable[[], None] | None = None

    def checked_out(self, info: MutableMapping[str, Any], now: float) -> None:
        """A connection was handed out at ``now`` (the guard's clock reading): remember
        who took it and report it if it is still out after the threshold."""
        stack = traceback.StackSummary.extract(
            _acquiring_frames(sys._getframe(1)), limit=STACK_LIMIT, lookup_lines=False
        )
        stack.reverse()  # outermost first, as a traceback reads
        lease = Lease(self, now, stack)
        lease.timer = asyncio.get_running_loop().call_later(self.threshold, lease.report)
        info[LEASE] = lease

    def returned(self, info: MutableMapping[str, Any], now: float) -> None:
        """The connection came back at ``now``: disarm its timer, or, if it was reported,
        say it came back and after how long."""
        lease: Lease | None = info.pop(LEASE, None)
        if lease is None:
            return
        if lease.timer is not None:
            lease.timer.cancel()
        if lease.reported:
            _log.info(
                "postgres connection reported as a possible leak was returned",
                pool=self.pool,
                held_s=round(now - lease.started, 3),
                acquired_at=lease.where(),
            )
