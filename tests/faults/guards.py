"""Collects what a fault may leave behind: warnings (ResourceWarning, SQLAlchemy's
"non-checked-in connection"), asyncio's "Task was destroyed but it is pending" and
"Unclosed ..." log lines, and tasks still running after a test."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_WATCHED_LOGGERS = ("asyncio", "sqlalchemy.pool", "sqlalchemy.engine")
_BAD_LOG_WORDS = ("destroyed but it is pending", "unclosed", "non-checked-in", "never retrieved")


@dataclass
class Leaks:
    warnings: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.warnings + [
            line for line in self.logs if any(w in line.lower() for w in _BAD_LOG_WORDS)
        ]


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def collect_leaks() -> Iterator[Leaks]:
    """Record leak warnings and log lines while the block runs (and a GC pass at its end)."""
    leaks = Leaks()
    handler = _Collect(leaks.logs)
    loggers = [logging.getLogger(name) for name in _WATCHED_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield leaks
        finally:
            gc.collect()
            for logger in loggers:
                logger.removeHandler(handler)
            leaks.warnings.extend(
                f"{w.category.__name__}: {w.message}"
                for w in caught
                if issubclass(w.category, ResourceWarning)
                or "non-checked-in" in str(w.message)
                or "never awaited" in str(w.message)
            )


def stray_tasks() -> list[asyncio.Task[object]]:
    """Tasks of the running loop other than the caller's."""
    current = asyncio.current_task()
    return [task for task in asyncio.all_tasks() if task is not current and not task.done()]
