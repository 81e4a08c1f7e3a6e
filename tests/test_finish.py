"""`blockmon.finish.finish_first`: cleanup runs to its end under cancellation, and the
cancellation goes on after it."""

from __future__ import annotations

import asyncio

import pytest

from blockmon.finish import finish_first


async def test_the_work_finishes_before_the_cancellation_goes_on() -> None:
    finished = asyncio.Event()
    started = asyncio.Event()

    async def cleanup() -> str:
        started.set()
        await asyncio.sleep(0.05)
        finished.set()
        return "closed"

    caller = asyncio.create_task(finish_first(cleanup()))
    await started.wait()
    caller.cancel()
    await asyncio.sleep(0)
    caller.cancel()  # a second cancel while it waits changes nothing
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished.is_set()


async def test_the_cancellation_wins_over_the_works_error() -> None:
    started = asyncio.Event()

    async def cleanup() -> None:
        started.set()
        await asyncio.sleep(0.05)
        raise OSError("the close failed")

    caller = asyncio.create_task(finish_first(cleanup()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_timeout_stays_a_timeout() -> None:
    async def cleanup() -> str:
        await asyncio.sleep(0.05)
        return "closed"

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await finish_first(cleanup())


async def test_without_a_cancellation_the_result_or_error_is_the_works() -> None:
    async def value() -> int:
        return 1

    async def failing() -> None:
        raise OSError("the close failed")

    assert await finish_first(value()) == 1
    with pytest.raises(OSError, match="the close failed"):
        await finish_first(failing())
