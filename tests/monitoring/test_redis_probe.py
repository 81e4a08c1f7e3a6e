"""The Redis check's own connection (docs/monitoring.md): it answers while the
application's pool is entirely checked out, reconnects after its socket is killed, and
leaves no connection behind after shutdown."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from redis.asyncio import Redis

from blockmon.config.settings import Settings
from blockmon.health import HealthChecker, Status
from blockmon.redis.client import create_client
from tests.monitoring.support import merged, running

POOL = 4


def probe_config(blockmon_config: dict[str, Any], name: str) -> dict[str, Any]:
    # pool_timeout above check_timeout: a probe queueing in the pool would time out.
    return merged(
        blockmon_config,
        redis={"client_name": name, "max_connections": POOL, "pool_timeout": 20},
        monitoring={"check_timeout": 5},
    )


async def named(admin: Redis, name: str) -> list[dict[str, Any]]:
    return [c for c in await admin.client_list() if c.get("name") == name]


async def test_check_answers_with_the_pool_checked_out_and_closes_at_shutdown(
    blockmon_config: dict[str, Any], blockmon_settings: Settings
) -> None:
    name = f"bm-probe-{secrets.token_hex(4)}"
    admin = create_client(blockmon_settings.redis)
    try:
        async with running(probe_config(blockmon_config, name)) as container:
            checker: HealthChecker = await container.monitoring.health()
            client: Redis = await container.redis.client()
            pool = client.connection_pool
            held = [await pool.get_connection() for _ in range(POOL)]
            try:
                result = await asyncio.wait_for(checker.check("redis", max_age=0), 15)
                ready = await asyncio.wait_for(checker.readiness(), 15)
            finally:
                for connection in held:
                    await pool.release(connection)
            assert result.status == Status.WARN, result
            values = {o.measurement: o.value for o in result.observations}
            assert values["connections"] == {"used": POOL, "idle": 0, "max": POOL}
            assert values["role"] == "master" and values["memory"] > 0
            assert result.reason == f"pool saturated: {POOL}/{POOL} in use"
            assert ready.status == Status.WARN
            assert len(await named(admin, f"{name}-health")) == 1

            after = await checker.check("redis", max_age=0)
            assert after.status == Status.PASS, after
        assert await named(admin, f"{name}-health") == []
        assert await named(admin, name) == []
    finally:
        await admin.aclose()


async def test_probe_reconnects_after_its_connection_is_killed(
    blockmon_config: dict[str, Any], blockmon_settings: Settings
) -> None:
    name = f"bm-probe-{secrets.token_hex(4)}"
    admin = create_client(blockmon_settings.redis)
    try:
        async with running(probe_config(blockmon_config, name)) as container:
            checker: HealthChecker = await container.monitoring.health()
            assert (await checker.check("redis", max_age=0)).status == Status.PASS
            (old,) = await named(admin, f"{name}-health")
            await admin.execute_command("CLIENT", "KILL", "ID", old["id"])
            results = [await checker.check("redis", max_age=0) for _ in range(2)]
            assert results[-1].status == Status.PASS, results
            (new,) = await named(admin, f"{name}-health")
            assert new["id"] != old["id"]
        assert await named(admin, f"{name}-health") == []
    finally:
        await admin.aclose()
