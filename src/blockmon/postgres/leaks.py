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
from collections.abc import Callable, MutableMapping
from importlib.util import find_spec
from pathlib import Path
from time import perf_counter
from types import FrameType
from typing import Any

import greenlet

from blockmon.config.log import get_logger

_log = get_logger("blockmon.postgres")
LEASE = "blockmon_leak_lease"  # record.info: the `Lease` of the checkout in progress
STACK_LIMIT = 12  # innermost frames of the acquiring code kept


def _package_dir(name: str) -> str:
    """Where package ``name`` is installed, without importing it (``blockmon db history``
    and the migration env need no driver)."""
    spec = find_spec(name)
    origin = spec.origin if spec is not None else None
    return f"{Path(origin).parent}/" if origin else f"<{name} not found>"


# Frames of these packages are the way to the pool, not the code that asked for it.
_PASSAGE = (
    f"{Path(__file__).parents[1]}/",  # blockmon
    *(_package_dir(name) for name in ("sqlalchemy", "asyncpg")),
    "<sqlalchemy ",  # the wrappers SQLAlchemy generates (decorators, lambdas)
    str(contextlib.__file__),
)
# A task's coroutines end at the event loop: what called the loop did not take the connection.
_LOOP = f"{Path(asyncio.__file__).parent}/"


_PASS, _USER, _END = 0, 1, 2  # a frame's part: the way to the pool, acquiring code, the loop
_parts: dict[str, int] = {}  # co_filename -> its part, learnt once per source file


def _part(filename: str) -> int:
    if filename.startswith(_LOOP):
        return _END
    return _PASS if filename.startswith(_PASSAGE) else _USER


def _acquiring_frames(frame: FrameType | None) -> list[tuple[str, int, str]]:
    """``(file, line, function)`` of the frames from ``frame`` outwards, innermost first,
    past blockmon, SQLAlchemy, asyncpg and contextlib, up to the task's first frame; when
    all of them are such (blockmon's own health checks), the task's first frame.
    SQLAlchemy's async layer runs the pool in a greenlet, whose outermost frame continues
    in its parent greenlet. A frame costs no call once its file is known."""
    parts = _parts
    found: list[tuple[str, int, str]] = []
    kept = 0
    current: Any = None
    passed: FrameType | None = None  # the outermost frame on the way to the pool so far
    while kept < STACK_LIMIT:
        if frame is None:
            current = (greenlet.getcurrent() if current is None else current).parent
            if current is None:
                break
            frame = current.gr_frame
            continue
        code = frame.f_code
        filename = code.co_filename
        try:
            part = parts[filename]
        except KeyError:
            part = parts[filename] = _part(filename)
        if part == _END:
            break
        if part == _USER:
            found.append((filename, frame.f_lineno, code.co_name))
            kept += 1
        else:
            passed = frame
        frame = frame.f_back
    if not found and passed is not None:
        code = passed.f_code
        found.append((code.co_filename, passed.f_lineno, code.co_name))
    return found


class Lease:
    """One checkout while detection is on: when, where from, and its timer."""

    __slots__ = ("detector", "frames", "reported", "started", "timer")

    def __init__(
        self, detector: LeakDetector, started: float, frames: list[tuple[str, int, str]]
    ) -> None:
        self.detector = detector
        self.started = started
        self.frames = frames  # innermost first
        self.reported = False
        self.timer: asyncio.TimerHandle | None = None

    def where(self) -> str:
        """``file:line`` of the innermost acquiring frame (the statement that took it)."""
        if not self.frames:
            return "unknown"
        filename, line, _ = self.frames[0]
        return f"{filename}:{line}"

    def stack(self) -> str:
        """The acquiring frames as a traceback names them (outermost first): file, line
        and function only. No source text: a literal on the acquiring line (a key, a
        token) would otherwise land in the log."""
        return "\n".join(
            f'  File "{f}", line {line}, in {name}' for f, line, name in reversed(self.frames)
        )

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
            stack=self.stack(),
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
        lease = Lease(self, now, _acquiring_frames(sys._getframe(1)))
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
