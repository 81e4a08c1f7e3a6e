"""``Lifespan(container, drain_signals=True)`` in one process: the handler goes in when the
Resources have started and out when they stop (start, stop, start again); SIGTERM flips
readiness at once and holds the signal back from the handler installed before (the
server's) for ``monitoring.shutdown_delay``; a second signal reaches it at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from blockmon import ApplicationContainer, Lifespan
from tests.monitoring.support import merged

WAIT = 60.0


@pytest.fixture
def server_handler() -> Iterator[list[int]]:
    """A stand-in for the server's SIGTERM/SIGINT handler, recording what reaches it."""
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def test_signals_are_held_back_then_passed_on(
    blockmon_config: dict[str, Any], server_handler: list[int]
) -> None:
    container = ApplicationContainer()
    container.config.from_dict(merged(blockmon_config, monitoring={"shutdown_delay": 3600}))
    lifespan = Lifespan(container, drain_signals=True)
    readiness = container.monitoring.readiness()
    server = signal.getsignal(signal.SIGTERM)
    for _ in range(2):  # start, stop, start again
        async with lifespan:
            assert signal.getsignal(signal.SIGTERM) != server
            assert readiness.refusing is None
        assert signal.getsignal(signal.SIGTERM) == server
        assert readiness.refusing == "shutting down"
    async with lifespan:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + WAIT
        while readiness.refusing is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert readiness.refusing == "shutting down"
        await asyncio.sleep(0.2)
        assert server_handler == []  # held back: the delay is an hour
        os.kill(os.getpid(), signal.SIGINT)  # the second signal: passed on at once
        while not server_handler:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert server_handler == [signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) == server
