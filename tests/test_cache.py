"""Every cache operation against the real Redis, and cache-aside under a stampede."""

from __future__ import annotations

import asyncio

import pytest
from support import eventually

from blockmon.redis.cache import Cache

CALLERS = 100


async def all_missed(cache: Cache, callers: int) -> None:
    """Wait (bounded) until ``callers`` reads have missed."""
    async with asyncio.timeout(30):
        while cache.misses < callers:  # noqa: ASYNC110 - a plain counter, no event to wait on
            await asyncio.sleep(0.005)


async def test_set_get_delete_exists(blockmon_cache: Cache) -> None:
    cache = blockmon_cache
    assert await cache.get("a") is None
    await cache.set("a", "text")
    await cache.set("b", b"\x00bytes")
    await cache.set("c", 42)
    await cache.set("d", 1.5)
    assert await cache.get("a") == b"text"
    assert await cache.get("b") == b"\x00bytes"
    assert await cache.get("c") == b"42"
    assert await cache.get("d") == b"1.5"
    assert await cache.exists("a", "b", "missing") == 2
    assert await cache.exists("a", "a") == 2
    assert await cache.exists() == 0
    assert await cache.delete("a", "missing") == 1
    assert await cache.delete() == 0
    assert await cache.get("a") is None
    assert await cache.exists("a") == 0


async def test_ttl(blockmon_cache: Cache) -> None:
    cache = blockmon_cache
    await cache.set("t", "v", ttl=60)
    left = await cache.ttl("t")
    assert left is not None and 0 < left <= 60
    await cache.set("forever", "v")
    assert await cache.ttl("forever") is None
    assert await cache.ttl("missing") is None
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"^ttl: must be > 0 seconds"):
            await cache.set("x", "v", ttl=bad)


async def test_ttl_expiry(blockmon_cache: Cache) -> None:
    await blockmon_cache.set("short", "v", ttl=0.2)
    await blockmon_cache.set_many({"s1": "v", "s2": "v"}, ttl=0.2)

    async def gone() -> bool:
        return await blockmon_cache.exists("short", "s1", "s2") == 0

    assert await eventually(gone, timeout=10)


async def test_json_round_trip(blockmon_cache: Cache) -> None:
    value = {"name": "rule", "n": 3, "f": 0.5, "ok": True, "none": None, "items": [1, "two"]}
    await blockmon_cache.set_json("j", value, ttl=60)
    assert await blockmon_cache.get_json("j") == value
    assert (
        await blockmon_cache.get("j")
        == b'{"name":"rule","n":3,"f":0.5,"ok":true,"none":null,"items":[1,"two"]}'
    )
    assert await blockmon_cache.get_json("missing", default=[]) == []


async def test_namespace_isolation(blockmon_cache: Cache) -> None:
    other = Cache(blockmon_cache.client, prefix=blockmon_cache.prefix + "other:")
    try:
        await blockmon_cache.set("k", "mine")
        await other.set("k", "theirs")
        assert await blockmon_cache.get("k") == b"mine"
        assert await other.get("k") == b"theirs"
        assert await blockmon_cache.client.get(blockmon_cache.prefix + "k") == b"mine"
        await other.delete("k")
        assert await blockmon_cache.get("k") == b"mine"
        assert await other.exists("k") == 0
    finally:
        await other.delete("k")


async def test_get_many_set_many(blockmon_cache: Cache) -> None:
    items = {f"m{i}": f"v{i}" for i in range(250)}
    await blockmon_cache.set_many(items, ttl=60)
    got = await blockmon_cache.get_many([*items, "absent"])
    assert got == {**{k: v.encode() for k, v in items.items()}, "absent": None}
    left = await blockmon_cache.ttl("m249")
    assert left is not None and 0 < left <= 60
    assert await blockmon_cache.get_many([]) == {}
    await blockmon_cache.set_many({})
    assert await blockmon_cache.delete(*items) == 250


async def test_get_or_compute_json_computes_once_for_100_callers(blockmon_cache: Cache) -> None:
    calls = 0

    async def compute() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return {"answer": 42}

    results = await asyncio.gather(
        *(blockmon_cache.get_or_compute_json("hot", compute, ttl=60) for _ in range(CALLERS))
    )
    assert calls == 1
    assert results == [{"answer": 42}] * CALLERS
    assert await blockmon_cache.get_json("hot") == {"answer": 42}
    assert await blockmon_cache.get_or_compute_json("hot", compute) == {"answer": 42}
    assert calls == 1  # served from Redis now


async def test_get_or_compute_json_does_not_cache_none(blockmon_cache: Cache) -> None:
    """ "Not found" is asked again: a row created meanwhile is found on the next call."""
    found: dict[str, int] | None = None
    calls = 0

    async def compute() -> dict[str, int] | None:
        nonlocal calls
        calls += 1
        return found

    assert await blockmon_cache.get_or_compute_json("maybe", compute, ttl=60) is None
    assert not await blockmon_cache.exists("maybe")
    found = {"id": 1}
    assert await blockmon_cache.get_or_compute_json("maybe", compute, ttl=60) == {"id": 1}
    assert await blockmon_cache.get_or_compute_json("maybe", compute, ttl=60) == {"id": 1}
    assert calls == 2  # the None was not stored; the dict was


async def test_get_or_compute_json_error_reaches_every_waiter(blockmon_cache: Cache) -> None:
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        # Fail only once every caller has missed: a caller whose GET came back after the
        # failure would (rightly) try again, which is not what this test is about.
        await all_missed(blockmon_cache, CALLERS)
        raise LookupError("source down")

    results = await asyncio.gather(
        *(blockmon_cache.get_or_compute_json("bad", compute, ttl=60) for _ in range(CALLERS)),
        return_exceptions=True,
    )
    assert calls == 1
    assert all(isinstance(r, LookupError) and str(r) == "source down" for r in results)
    assert await blockmon_cache.exists("bad") == 0
    assert not blockmon_cache._inflight

    async def works() -> int:
        return 7

    assert await blockmon_cache.get_or_compute_json("bad", works) == 7  # nothing stuck


async def test_get_or_compute_json_survives_cancelling_the_leader(blockmon_cache: Cache) -> None:
    started = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.1 if calls > 1 else 60)
        return "value"

    leader = asyncio.create_task(blockmon_cache.get_or_compute_json("lead", compute, ttl=60))
    await asyncio.wait_for(started.wait(), 30)
    followers = [
        asyncio.create_task(blockmon_cache.get_or_compute_json("lead", compute, ttl=60))
        for _ in range(10)
    ]
    await asyncio.sleep(0.05)  # let the followers start waiting on the leader
    leader.cancel()
    results = await asyncio.wait_for(asyncio.gather(*followers), 30)
    assert results == ["value"] * 10
    assert leader.cancelled()
    assert calls == 2  # the cancelled leader, then one follower that took over
    assert await blockmon_cache.get_json("lead") == "value"


async def test_cancelled_follower_does_not_disturb_the_others(blockmon_cache: Cache) -> None:
    release = asyncio.Event()

    async def compute() -> int:
        await asyncio.wait_for(release.wait(), 30)
        return 1

    tasks = [
        asyncio.create_task(blockmon_cache.get_or_compute_json("f", compute, ttl=60))
        for _ in range(5)
    ]
    await all_missed(blockmon_cache, 5)  # every caller is past its GET, waiting on the leader
    await asyncio.sleep(0)
    tasks[3].cancel()
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    assert [r for i, r in enumerate(results) if i != 3] == [1, 1, 1, 1]
    assert isinstance(results[3], asyncio.CancelledError)


async def test_get_or_compute_json_a_miss_answered_after_the_leader_finished(
    blockmon_cache: Cache,
) -> None:
    """A caller whose GET missed, but whose answer arrived only after the leader had
    stored the value and gone (a loaded machine, a slow network), reads the stored value
    instead of computing it again."""
    real = blockmon_cache.client
    leader_done = asyncio.Event()
    held: list[str] = []

    class SlowFirstGet:
        """The real client; the first GET of the late caller is answered (a miss, as the
        server said when it was asked) only after the leader has finished."""

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        async def get(self, name: str) -> object:
            answer = await real.get(name)
            if asyncio.current_task().get_name() == "late" and not held:  # type: ignore[union-attr]
                held.append(name)
                await leader_done.wait()
            return answer

    blockmon_cache.client = SlowFirstGet()  # type: ignore[assignment]
    calls = 0

    async def compute() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"n": calls}

    late = asyncio.create_task(blockmon_cache.get_or_compute_json("raced", compute), name="late")
    await asyncio.sleep(0.05)  # the late caller's GET has its (missing) answer, held
    assert held == [blockmon_cache.key("raced")]
    assert await blockmon_cache.get_or_compute_json("raced", compute, ttl=60) == {"n": 1}
    leader_done.set()
    assert await asyncio.wait_for(late, 10) == {"n": 1}
    assert calls == 1
