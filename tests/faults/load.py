"""Concurrent load that records every operation's outcome and duration, so a test can
check afterwards that nothing hung, nothing was lost and nothing was half applied."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Op:
    kind: str
    key: int
    started: float
    ended: float
    error: BaseException | None

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Recorder:
    ops: list[Op] = field(default_factory=list)

    async def run(self, kind: str, key: int, call: Callable[[], Awaitable[object]]) -> Op:
        started = time.monotonic()
        error: BaseException | None = None
        try:
            await call()
        except Exception as exc:
            error = exc
        op = Op(kind, key, started, time.monotonic(), error)
        self.ops.append(op)
        return op

    def failed(self) -> list[Op]:
        return [op for op in self.ops if not op.ok]

    def longest(self) -> float:
        return max((op.duration for op in self.ops), default=0.0)

    def error_types(self) -> set[str]:
        return {type(op.error).__name__ for op in self.failed()}


async def run_workers(
    workers: int,
    body: Callable[[int, asyncio.Event], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
) -> None:
    """Run ``body(worker_number, stop)`` in ``workers`` tasks until each returns."""
    async with asyncio.TaskGroup() as group:
        for number in range(workers):
            group.create_task(body(number, stop))
