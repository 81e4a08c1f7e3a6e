"""The FIFO gate in front of the pool (`blockmon.gate`): permits go to waiters in
arrival order, a released permit is handed over (never lost, never taken back by the
releaser), a cancelled waiter takes none with it, and each waiter gives up at its own
deadline although the waiters share one timer."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from blockmon.gate import Gate


async def _settle() -> None:
    """Let every woken waiter run (a handed-over permit is taken in the next iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_waiters_get_permits_in_arrival_order() -> None:
    gate = Gate(2, timeout=60)
    assert await gate.acquire() and await gate.acquire()
    assert gate.locked()
    granted: list[int] = []

    async def wait(n: int) -> None:
        assert await gate.acquire()
        granted.append(n)

    tasks = [asyncio.create_task(wait(n)) for n in range(6)]
    await _settle()
    assert granted == []
    for _ in range(6):
        gate.release()
        await _settle()
    assert granted == list(range(6))
    await asyncio.gather(*tasks)


async def test_a_releaser_cannot_take_its_permit_back_ahead_of_a_waiter() -> None:
    gate = Gate(1, timeout=60)
    assert await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await _settle()
    gate.release()
    assert gate.locked()  # handed to the waiter, not free for whoever asks next
    again = asyncio.create_task(gate.acquire())
    await _settle()
    assert waiter.done() and waiter.result() is True
    assert not again.done()
    gate.release()
    assert await asyncio.wait_for(again, 10) is True


async def test_a_cancelled_waiter_takes_no_permit() -> None:
    gate = Gate(1, timeout=60)
    assert await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    second = asyncio.create_task(gate.acquire())
    await _settle()
    first.cancel()
    await _settle()
    gate.release()
    assert await asyncio.wait_for(second, 10) is True
    assert first.cancelled()


async def test_a_permit_handed_to_a_waiter_cancelled_before_it_ran_passes_on() -> None:
    gate = Gate(1, timeout=60)
    assert await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    second = asyncio.create_task(gate.acquire())
    await _settle()
    gate.release()  # handed to ``first`` ...
    first.cancel()  # ... which is cancelled before it could run
    assert await asyncio.wait_for(second, 10) is True
    assert first.cancelled()
    gate.release()
    assert not gate.locked()


async def test_each_waiter_gives_up_at_its_own_deadline() -> None:
    gate = Gate(1, timeout=0.3)
    assert await gate.acquire()
    loop = asyncio.get_running_loop()
    early = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0.15)
    late = asyncio.create_task(gate.acquire())
    await _settle()
    started = loop.time()
    assert await asyncio.wait_for(early, 10) is False
    assert not late.done()  # its deadline is 0.15 s after the first one's
    assert await asyncio.wait_for(late, 10) is False
    assert loop.time() - started >= 0.1
    # nothing was lost: the permit held all along comes back and is free again
    gate.release()
    assert not gate.locked()
    assert await gate.acquire()


async def test_waiters_after_a_timeout_still_get_released_permits() -> None:
    gate = Gate(1, timeout=0.2)
    assert await gate.acquire()
    assert await asyncio.wait_for(gate.acquire(), 10) is False
    waiter = asyncio.create_task(gate.acquire())
    await _settle()
    gate.release()
    assert await asyncio.wait_for(waiter, 10) is True


# One step of a random schedule: a caller arrives, a holder releases, a waiter is
# cancelled, or a holder releases and the first waiter is cancelled before it could run;
# the index picks which holder or waiter.
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["arrive", "release", "cancel", "release, cancel first"]),
        st.integers(0, 50),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(permits=st.integers(1, 4), steps=STEPS)
def test_no_permit_is_lost_and_order_is_kept_under_any_schedule(
    permits: int, steps: list[tuple[str, int]]
) -> None:
    asyncio.run(_schedule(permits, steps))


async def _schedule(permits: int, steps: list[tuple[str, int]]) -> None:
    gate = Gate(permits, timeout=60)
    holders: list[int] = []
    waiting: dict[int, asyncio.Task[None]] = {}
    granted: list[int] = []
    arrived = 0

    async def caller(n: int) -> None:
        assert await gate.acquire()
        granted.append(n)
        holders.append(n)

    for action, pick in steps:
        if action == "arrive":
            waiting[arrived] = asyncio.create_task(caller(arrived))
            arrived += 1
        elif action == "release" and holders:
            holders.pop(pick % len(holders))
            gate.release()
        elif action == "cancel" and waiting:
            n = sorted(waiting)[pick % len(waiting)]
            waiting.pop(n).cancel()
        elif action == "release, cancel first" and holders and waiting:
            holders.pop(pick % len(holders))
            gate.release()
            waiting.pop(min(waiting)).cancel()
        await _settle()
        for n in [n for n, task in waiting.items() if task.done()]:
            del waiting[n]
        assert len(holders) <= permits
        # a permit never sits free while a caller waits for one
        assert not waiting or len(holders) == permits
        # callers are served in arrival order
        assert granted == sorted(granted)
    for task in waiting.values():
        task.cancel()
    await _settle()
    for _ in holders:
        gate.release()
    for _ in range(permits):
        assert not gate.locked()
        assert await gate.acquire()
    assert gate.locked()
