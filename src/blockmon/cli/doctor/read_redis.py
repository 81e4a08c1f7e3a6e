"""Reading Redis's limits: INFO (allowed where CONFIG is not, as on managed Redis),
CONFIG GET for the idle timeout and snapshots when permitted, CLIENT LIST for ours."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError, ResponseError

from blockmon.cli.doctor.facts import Facts, RedisFacts
from blockmon.config.failures import connection_failure
from blockmon.config.settings import RedisSettings
from blockmon.provisioning.servers import redis_address
from blockmon.redis.client import create_client
from blockmon.redis.topology import close_client


async def read_redis(settings: RedisSettings, facts: Facts, timeout: float) -> None:
    """Fill ``facts.redis`` (or ``redis_error``); a cluster is left to its nodes' own checks."""
    if settings.mode == "cluster":
        facts.notes.append("redis: cluster mode: each node's limits are not read (not done)")
        return
    fast = settings.model_copy(
        update={"socket_timeout": timeout, "socket_connect_timeout": timeout, "retries": 0}
    )
    client: Any = create_client(fast)
    try:
        info = await asyncio.wait_for(client.info(), timeout)
        config = await _config(client, "maxclients", "timeout", "save")
        names = await _client_names(client)
    except (RedisError, OSError, TimeoutError) as error:
        where = redis_address(settings)
        facts.redis_error = connection_failure(error, address=where, timeout=("", timeout))
        return
    finally:
        await close_client(client)
    maxclients = config.get("maxclients", info.get("maxclients"))
    facts.redis = RedisFacts(
        maxclients=int(maxclients) if maxclients is not None else 10000,
        connected_clients=max(0, int(info.get("connected_clients", 1)) - 1),  # not the doctor
        ours=max(0, sum(1 for name in names if name == settings.client_name) - 1),
        maxmemory=int(info.get("maxmemory", 0)),
        maxmemory_policy=str(info.get("maxmemory_policy", "noeviction")),
        timeout=int(config["timeout"]) if "timeout" in config else None,
        save=str(config["save"]) if "save" in config else None,
        aof=bool(int(info.get("aof_enabled", 0))),
        role=str(info.get("role", "master")),
    )


async def _config(client: Any, *names: str) -> dict[str, str]:
    """CONFIG GET each name; a server that refuses CONFIG (ACL, renamed) gives none."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found.update({str(k): str(v) for k, v in (await client.config_get(name)).items()})
        except ResponseError:
            return found
    return found


async def _client_names(client: Any) -> list[str]:
    try:
        return [str(c.get("name", "")) for c in await client.client_list()]
    except ResponseError:
        return []
