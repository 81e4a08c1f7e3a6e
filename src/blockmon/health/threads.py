"""Synchronous checks run on threads of their own, so a hung one cannot starve the loop's
default executor (which the application's ``asyncio.to_thread`` and DNS lookups share).

A bounded set of daemon threads, started on demand: a check that never returns holds one
of them (the checker starts no second run of a check whose last call is still running)
and never blocks the interpreter's exit, as a ``ThreadPoolExecutor``'s worker would.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Job = tuple[Future[Any], Callable[[], Any]] | None


class CheckThreads:
    """At most ``size`` daemon threads running submitted calls in order of submission."""

    def __init__(self, size: int, name: str = "blockmon-health") -> None:
        if size < 1:
            raise ValueError(f"size: must be >= 1, got {size!r}")
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, function: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._idle == 0 and self._threads < self.size:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self.name}-{self._threads}", daemon=True
                ).start()
            elif self._idle:
                self._idle -= 1  # an idle thread takes it
        self._jobs.put((future, function))
        return future

    def shutdown(self) -> None:
        """Let every thread end once its current call returns; calls queued and not
        started are cancelled. Not reusable afterwards: make a new one."""
        with self._lock:
            threads, self._threads, self._idle = self._threads, 0, 0
        drained: list[_Job] = []
        while True:
            try:
                drained.append(self._jobs.get_nowait())
            except queue.Empty:
                break
        for job in drained:
            if job is not None:
                job[0].cancel()
        for _ in range(threads):
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, function = job
            if future.set_running_or_notify_cancel():
                try:
                    result = function()
                except BaseException as error:  # handed to the awaiting check
                    future.set_exception(error)
                else:
                    future.set_result(result)
            with self._lock:
                self._idle += 1
