"""Redis Sentinel and Cluster through configuration alone, against real local deployments."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster

from blockmon.cli import main
from blockmon.config.settings import RedisSettings, validate
from blockmon.containers import RedisContainer
from blockmon.errors import ConfigError
from blockmon.health.checks.redis_topology import cluster_state, sentinel_master
from blockmon.redis.cache import Cache
from blockmon.redis.topology import REDIS_ERRORS
from blockmon.testing.servers import ClusterDeployment, SentinelDeployment

FAILOVER_DEADLINE = 60.0  # seconds: generous for a loaded 2-core machine


CLIENT = {"socket_timeout": 2, "socket_connect_timeout": 1, "retries": 2, "key_prefix": "t:"}


def sentinel_config(deployment: SentinelDeployment) -> dict[str, Any]:
    return deployment.settings() | CLIENT


def cluster_config(deployment: ClusterDeployment) -> dict[str, Any]:
    return deployment.settings() | CLIENT


@asynccontextmanager
async def started(config: dict[str, Any]) -> AsyncIterator[RedisContainer]:
    container = RedisContainer()
    container.config.from_dict(config)
    await container.init_resources()
    try:
        yield container
    finally:
        await container.shutdown_resources()


async def exercise_cache(cache: Cache) -> None:
    """Every multi-key operation, on keys that land in many slots."""
    items = {f"key-{i}": f"value-{i}" for i in range(200)}
    await cache.set_many(items, ttl=60)
    got = await cache.get_many([*items, "missing"])
    assert got["missing"] is None
    assert {k: v for k, v in got.items() if k != "missing"} == {
        k: v.encode() for k, v in items.items()
    }
    assert await cache.exists(*items, "missing") == len(items)
    assert await cache.delete(*list(items)[:150]) == 150
    assert await cache.exists(*items) == 50
    assert await cache.get_or_compute_json("computed", _compute, ttl=60) == {"n": 1}
    assert await cache.get_json("computed") == {"n": 1}


async def _compute() -> dict[str, int]:
    return {"n": 1}


async def ride_out_failover(cache: Cache, kill: Any, recovered: Any) -> tuple[int, int, float]:
    """Write and read in a loop while ``kill()`` takes the master down; stop once
    ``recovered()`` and 50 operations in a row succeeded. Returns (errors, ops, seconds)."""
    errors = ops = streak = 0
    killed_at = 0.0
    deadline = time.monotonic() + FAILOVER_DEADLINE
    for i in range(20):  # warm up: the pool holds connections to the master
        await cache.set(f"warm-{i}", i)
    kill()
    killed_at = time.monotonic()
    while streak < 50 or not await recovered():
        assert time.monotonic() < deadline, (
            f"no recovery after {FAILOVER_DEADLINE}s ({errors} errors)"
        )
        ops += 1
        try:
            await cache.set(f"op-{ops % 100}", ops)
            assert await cache.get(f"op-{ops % 100}") == str(ops).encode()
            streak += 1
        except REDIS_ERRORS:
            errors += 1
            streak = 0
            await asyncio.sleep(0.05)
    return errors, ops, time.monotonic() - killed_at


# --- Sentinel -----------------------------------------------------------------------------


async def test_sentinel_mode_serves_the_cache_and_reports_the_master(
    redis_sentinel: SentinelDeployment,
) -> None:
    async with started(sentinel_config(redis_sentinel)) as container:
        client: Redis = await container.client()
        await exercise_cache(await container.cache())
        master = await sentinel_master(client)
        assert master.status == "pass"
        assert master.address == redis_sentinel.current_master()
        assert master.replicas == 1
        shown = f"{client!r} {container.settings()!r} {master!r}"
        assert redis_sentinel.password not in shown
        assert redis_sentinel.sentinel_password not in shown


async def test_sentinel_failover_is_followed_without_restart(
    redis_sentinel: SentinelDeployment,
) -> None:
    old = redis_sentinel.current_master()
    async with started(sentinel_config(redis_sentinel)) as container:
        client: Redis = await container.client()

        async def recovered() -> bool:
            return (await sentinel_master(client)).address not in (None, old)

        assert redis_sentinel.master is not None
        errors, ops, seconds = await ride_out_failover(
            await container.cache(), redis_sentinel.master.kill, recovered
        )
        print(f"sentinel failover: {errors} errors in {ops} ops over {seconds:.1f}s")
        new = (await sentinel_master(client)).address
        assert new == redis_sentinel.current_master() != old
        assert redis_sentinel.replica is not None and new == redis_sentinel.replica.address
        assert (await client.info("replication"))["role"] == "master"


async def test_sentinel_master_reports_a_lost_service(redis_sentinel: SentinelDeployment) -> None:
    config = sentinel_config(redis_sentinel) | {"service_name": "no-such-service"}
    async with started(config) as container:
        master = await sentinel_master(await container.client(), timeout=5)
        assert master.status == "fail" and master.address is None
        assert master.error is not None and "no-such-service" in master.error
        assert redis_sentinel.sentinel_password not in master.error


# --- Cluster ------------------------------------------------------------------------------


async def test_cluster_mode_serves_multi_key_cache_operations_across_slots(
    redis_cluster: ClusterDeployment,
) -> None:
    async with started(cluster_config(redis_cluster)) as container:
        client = await container.client()
        assert isinstance(client, RedisCluster)
        cache: Cache = await container.cache()
        await exercise_cache(cache)
        owners = {redis_cluster.master_of(cache.key(f"key-{i}")).port for i in range(150, 200)}
        assert len(owners) == 3  # the keys really span every master
        state = await cluster_state(client)
        assert (state.state, state.slots_ok, state.coverage, state.status) == (
            "ok",
            16384,
            1.0,
            "pass",
        )
        assert len(state.nodes) == 6 and all(n.up for n in state.nodes)
        assert sorted(n.role for n in state.nodes) == ["master"] * 3 + ["replica"] * 3


async def test_cluster_master_failover_is_followed_without_restart(
    redis_cluster: ClusterDeployment,
) -> None:
    async with started(cluster_config(redis_cluster)) as container:
        client: RedisCluster = await container.client()
        cache: Cache = await container.cache()
        victim = redis_cluster.master_of(cache.key("op-1"))

        async def recovered() -> bool:
            return (await cluster_state(client)).state == "ok"

        errors, ops, seconds = await ride_out_failover(cache, victim.kill, recovered)
        print(f"cluster failover: {errors} errors in {ops} ops over {seconds:.1f}s")
        assert redis_cluster.master_of(cache.key("op-1")).port != victim.port
        state = await cluster_state(client)
        assert state.slots_ok == 16384
        down = [n.address for n in state.nodes if not n.up]
        assert down == [victim.address] and state.status == "warn"


async def test_cluster_state_reports_an_unreachable_cluster(
    redis_cluster: ClusterDeployment,
) -> None:
    async with started(cluster_config(redis_cluster)) as container:
        client: RedisCluster = await container.client()
        await client.ping()
        for node in redis_cluster.nodes:
            node.kill()
        state = await cluster_state(client, timeout=5)
        assert state.status == "fail" and state.error is not None


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "sentinel"}, "redis.sentinels: is required when redis.mode is sentinel"),
        (
            {"mode": "sentinel", "sentinels": ["127.0.0.1:26379"]},
            "redis.service_name: is required when redis.mode is sentinel",
        ),
        (
            {"mode": "cluster", "cluster_nodes": ["nohost"]},
            "redis.cluster_nodes.0: must be host:port",
        ),
        ({"mode": "cluster", "db": 3}, "redis.db: must be 0 when redis.mode is cluster, got 3"),
        (
            {"mode": "replicated"},
            "redis.mode: must be one of 'standalone', 'sentinel' or 'cluster'",
        ),
        ({"sentinels": "a:1"}, "redis.sentinels: must be a list"),
    ],
)
def test_bad_topology_settings_name_the_setting(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(RedisSettings, data, "redis")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_url_with_a_non_standalone_mode_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        validate(RedisSettings, {"mode": "cluster", "url": "redis://:hunter22@h:1"}, "redis")
    assert str(caught.value).startswith("redis.url: applies to mode standalone only")
    assert "hunter22" not in str(caught.value)


def test_cli_exits_2_on_a_bad_topology(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    config = tmp_path / "config.yml"
    config.write_text("redis:\n  mode: sentinel\n  service_name: main\n")
    assert main(["config", "show", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == ("blockmon: error: redis.sentinels: is required when redis.mode is sentinel\n")
