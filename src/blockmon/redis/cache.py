"""Cache operations over a Redis client: plain and JSON values under a key namespace,
pipelined batches, and cache-aside that computes a missing value once per process
however many callers miss it at the same moment.

One rule names the value type: the methods ending in ``_json`` (`Cache.set_json`,
`Cache.get_json`, `Cache.get_or_compute_json`) store and return JSON-encoded values; the
others store ``bytes``/``str``/numbers as Redis does and return ``bytes``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from blockmon.config.deprecation import deprecated
from blockmon.redis.topology import RedisClient

T = TypeVar("T")
Value = bytes | str | int | float


def _px(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError(f"ttl: must be > 0 seconds, got {ttl!r}")
    return max(1, round(ttl * 1000))


class Cache:
    """Keys are namespaced with ``prefix``; ``ttl`` is in seconds, None means no expiry.

    Works in every ``redis.mode``: in a cluster, multi-key DELETE/EXISTS are split per
    slot by redis-py and pipelines are sent to each key's node, so keys need no hash tags.
    """

    def __init__(self, client: RedisClient, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._settled = 0  # computations ended (get_or_compute_json), any key
        self.hits = 0  # read by the metrics collector at scrape time
        self.misses = 0

    def __repr__(self) -> str:
        return f"Cache(prefix={self.prefix!r})"

    def key(self, key: str) -> str:
        return self.prefix + key

    async def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        await self.client.set(self.key(key), value, px=_px(ttl))

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(self.key(key))
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value if value is None or isinstance(value, bytes) else value.encode()

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self.client.delete(*map(self.key, keys)))

    async def exists(self, *keys: str) -> int:
        """How many of ``keys`` exist (a key named twice counts twice, as in Redis)."""
        if not keys:
            return 0
        return int(await self.client.exists(*map(self.key, keys)))

    async def ttl(self, key: str) -> float | None:
        """Seconds left before ``key`` expires; None if it has no expiry or does not exist."""
        ms = int(await self.client.pttl(self.key(key)))
        return ms / 1000 if ms >= 0 else None

    async def set_json(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self.set(key, json.dumps(value, separators=(",", ":")), ttl)

    async def get_json(self, key: str, default: Any = None) -> Any:
        raw = await self.get(key)
        return default if raw is None else json.loads(raw)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        """Fetch many keys in one round trip (a pipeline, so it also works per node in a cluster)."""
        names = list(keys)
        if not names:
            return {}
        prefix = self.prefix  # per key: no call but the pipeline's own
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(prefix + name)
            values = await pipe.execute()
        missed = values.count(None)
        self.hits += len(values) - missed
        self.misses += missed
        return dict(zip(names, values, strict=True))

    async def set_many(self, items: Mapping[str, Value], ttl: float | None = None) -> None:
        """Store many keys in one round trip."""
        if not items:
            return
        px, prefix = _px(ttl), self.prefix
        async with self.client.pipeline(transaction=False) as pipe:
            for name, value in items.items():
                pipe.set(prefix + name, value, px=px)
            await pipe.execute()

    async def get_or_compute_json(
        self, key: str, compute: Callable[[], Awaitable[T]], ttl: float | None = None
    ) -> T:
        """Cache-aside with JSON values: on a miss, one caller computes and stores; the
        others that miss the same key meanwhile await that one result. A None result is
        returned but not stored ("not found yet" is asked again on the next call)."""
        settled = self._settled
        raw = await self.get(key)
        if raw is None and self._settled != settled and key not in self._inflight:
            # A computation ended while this GET was on the wire: its value may have been
            # stored after the server answered, and its waiters are gone. Ask once more
            # rather than compute it again.
            raw = await self.get(key)
        if raw is not None:
            cached: T = json.loads(raw)
            return cached
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                shared: T = await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                return await self.get_or_compute_json(key, compute, ttl)  # the leader was cancelled
            return shared
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
            if value is not None:
                await self.set_json(key, value, ttl)
        except Exception as error:
            future.set_exception(error)
            future.exception()  # marks it retrieved when no other caller waits
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]
            self._settled += 1

    def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[T]], ttl: float | None = None
    ) -> Coroutine[Any, Any, T]:
        """Deprecated: `get_or_compute_json` (the values are JSON)."""
        deprecated("Cache.get_or_compute()", "Cache.get_or_compute_json()")
        return self.get_or_compute_json(key, compute, ttl)
