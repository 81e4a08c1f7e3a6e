"""Redis faults through the cache: restart under load, blackhole, latency, pool exhaustion.

The leak guard (conftest) turns "Task was destroyed but it is pending", unclosed
connections and ResourceWarnings into failures.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest
from redis import exceptions

from blockmon.health import Status
from blockmon.testing.proxy import FaultProxy, Mode
from blockmon.testing.servers import PostgresServer, RedisServer
from faults.clients import (
    MONITORING,
    REDIS_TIMEOUTS,
    monitored,
    pg_config,
    redis,
    redis_config,
    wait_for_status,
)
from faults.load import Recorder, run_workers

REDIS_DOWN_ERRORS = (exceptions.ConnectionError, exceptions.TimeoutError)
# How long health may take to notice a change: a few on-demand checks, each bounded by
# the check timeout, plus slack for a loaded machine.
HEALTH_BOUND = 3 * MONITORING["check_timeout"] + 10.0


def op_bound(retries: int) -> float:
    """Longest a cache call may take: pool wait, then (connect + read) per attempt,
    backoff (capped at 1 s) between attempts, plus slack for a loaded machine."""
    attempt: float = REDIS_TIMEOUTS["socket_connect_timeout"] + REDIS_TIMEOUTS["socket_timeout"]
    pool_wait: float = REDIS_TIMEOUTS["pool_timeout"]
    return pool_wait + (retries + 1) * attempt + retries * 1.0 + 5.0


@pytest.mark.parametrize("retries", [0, 3])
async def test_restart_under_load_fails_fast_or_retries_then_recovers(
    redis_server: RedisServer, pg_server: PostgresServer, retries: int
) -> None:
    """Also: the container's health check fails while Redis is down and passes once it
    is back, in the same process."""
    # 50 workers on 50 connections: the check has its own connection, so it does not
    # queue behind them (it used to report "timed out"; docs/resilience.md).
    config = redis_config(redis_server.port, retries=retries, max_connections=50)
    async with monitored(pg_config(pg_server.port), config) as handles:
        cache = handles.cache
        checker = handles.checker
        assert (await checker.check("redis")).status == Status.PASS
        recorder = Recorder()

        async def worker(number: int, stop: asyncio.Event) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                key = f"w{number}:{n}"
                if (await recorder.run("set", n, partial(cache.set, key, n, 30))).ok:
                    await recorder.run("get", n, partial(cache.get, key))
                else:
                    await asyncio.sleep(0.05)

        stop = asyncio.Event()
        load = asyncio.create_task(run_workers(50, worker, stop))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis_server.stop)
        stopped = time.monotonic()
        down = await wait_for_status(checker, "redis", {Status.FAIL}, HEALTH_BOUND)
        assert down.output, "a failed check says why"
        await asyncio.sleep(max(0.0, stopped + 0.5 - time.monotonic()))
        await asyncio.to_thread(redis_server.start)
        back = time.monotonic()
        await wait_for_status(checker, "redis", {Status.PASS, Status.WARN}, HEALTH_BOUND)
        await asyncio.sleep(max(0.0, back + 3.0 - time.monotonic()))
        stop.set()
        await asyncio.wait_for(load, op_bound(retries) + 5)
        # Under load the check may warn (pool saturated); idle again, it passes.
        await wait_for_status(checker, "redis", {Status.PASS}, HEALTH_BOUND)
        assert handles.sample("blockmon_health_status", component="redis", status="pass") == 1

        assert recorder.longest() <= op_bound(retries)
        failed = recorder.failed()
        assert all(isinstance(op.error, REDIS_DOWN_ERRORS) for op in failed), recorder.error_types()
        if retries == 0:
            assert failed, "with retries off, a 0.5 s outage must fail some calls"
        late = [op for op in recorder.ops if op.started > back + 2.0]
        assert late and all(op.ok for op in late), recorder.error_types()


async def test_blackhole_fails_within_timeouts_and_heals(
    redis_proxy: FaultProxy, pg_server: PostgresServer
) -> None:
    retries = 1
    config = redis_config(redis_proxy.port, retries=retries)
    async with monitored(pg_config(pg_server.port), config) as handles:
        cache = handles.cache
        checker = handles.checker
        await asyncio.gather(*(cache.set(f"k{n}", n) for n in range(10)))
        redis_proxy.mode = Mode.BLACKHOLE
        # The check gives up after its own timeout, whatever the retries allow, and says so.
        started = time.monotonic()
        blackholed = await asyncio.wait_for(checker.check("redis", max_age=0), HEALTH_BOUND)
        assert time.monotonic() - started <= MONITORING["check_timeout"] + 5
        assert blackholed.status == Status.FAIL, blackholed
        assert "timed out" in (blackholed.output or ""), blackholed
        recorder = Recorder()
        bound = op_bound(retries)
        await asyncio.wait_for(
            asyncio.gather(
                *(recorder.run("get", n, partial(cache.get, f"k{n}")) for n in range(20))
            ),
            bound + 5,
        )
        assert len(recorder.failed()) == 20
        assert all(isinstance(op.error, REDIS_DOWN_ERRORS) for op in recorder.ops)
        assert recorder.longest() <= bound

        redis_proxy.mode = Mode.PASS
        healed = time.monotonic()
        after = Recorder()
        while time.monotonic() < healed + 3.0:
            if (await after.run("get", 0, partial(cache.get, "k0"))).ok:
                break
        assert after.ops[-1].ok, after.error_types()
        assert await cache.get("k3") == b"3"
        await wait_for_status(checker, "redis", {Status.PASS}, HEALTH_BOUND)


async def test_latency_within_timeouts_succeeds(
    redis_proxy: FaultProxy, pg_server: PostgresServer
) -> None:
    """The latency shows in the command histogram."""
    async with monitored(pg_config(pg_server.port), redis_config(redis_proxy.port)) as handles:
        cache = handles.cache
        redis_proxy.latency = 0.2
        recorder = Recorder()
        await asyncio.wait_for(
            asyncio.gather(
                *(recorder.run("set", n, partial(cache.set, f"k{n}", n)) for n in range(20))
            ),
            30,
        )
        assert not recorder.failed(), recorder.error_types()
        # Each call crossed the proxy twice (request and reply), each way delayed.
        assert min(op.duration for op in recorder.ops) >= 0.4
        count = handles.sample("redis_command_duration_seconds_count", command="SET")
        fast = handles.sample("redis_command_duration_seconds_bucket", command="SET", le="0.25")
        total = handles.sample("redis_command_duration_seconds_sum", command="SET")
        assert count == 20 and fast == 0, (count, fast)
        assert total >= 20 * 0.4


async def test_pool_exhaustion_waits_pool_timeout_then_clear_error(
    redis_server: RedisServer, pg_server: PostgresServer
) -> None:
    """Redis has no waiters gauge; the timeouts count as BLPOP errors of type
    pool_timeout, not as connection errors (the server was fine)."""
    config = redis_config(redis_server.port, max_connections=2, pool_timeout=1.0, retries=3)
    async with monitored(pg_config(pg_server.port), config) as handles:
        client = handles.client
        recorder = Recorder()
        calls = [partial(client.blpop, [f"{config['key_prefix']}nothing"], 1.5) for _ in range(20)]
        await asyncio.wait_for(
            asyncio.gather(*(recorder.run("blpop", n, call) for n, call in enumerate(calls))), 30
        )
        failed = recorder.failed()
        assert len(failed) >= 16, recorder.error_types()
        assert all(isinstance(op.error, exceptions.ConnectionError) for op in failed)
        assert all("No connection available" in str(op.error) for op in failed)
        # They waited for the pool timeout (not failed at once), and no longer than it allows.
        assert all(1.0 <= op.duration <= 1.0 + 5.0 for op in failed)
        errors = handles.sample("redis_commands_total", command="BLPOP", status="error")
        assert errors == len(failed)
        assert handles.sample("redis_errors_total", type="pool_timeout") == len(failed)
        assert handles.sample("redis_errors_total", type="connection") == 0
        assert handles.sample("redis_connections_active") == 0


async def test_retry_after_a_timeout_can_apply_a_command_twice(redis_proxy: FaultProxy) -> None:
    """Documents a hazard (docs/resilience.md): redis-py's retry re-sends a command that
    timed out after it was sent. When the first copy still reaches the server (a partition
    that heals), a non-idempotent command runs twice. Use retries: 0 for such commands."""
    config = redis_config(redis_proxy.port, retries=1, socket_timeout=1.0)
    async with redis(config) as handles:
        client = handles.client
        key = f"{config['key_prefix']}counter"
        await client.ping()
        redis_proxy.mode = Mode.BLACKHOLE

        async def incr() -> int:
            return int(await client.incr(key))

        pending = asyncio.create_task(incr())
        await asyncio.sleep(1.5)  # the first attempt has timed out; the retry is waiting
        redis_proxy.mode = Mode.PASS
        assert await asyncio.wait_for(pending, 10) == 2
        assert await client.get(key) in (b"2", "2")  # one INCR call, applied twice
