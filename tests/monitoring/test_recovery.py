"""Outages through a TCP proxy (stopped: every connection dropped, the port closed): health fails, the pool drops dead connections, and
health passes again once the server is back, without a restart."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text

from blockmon.config.log import configure_logging
from blockmon.config.settings import LogSettings
from blockmon.health import Status
from blockmon.testing.proxy import FaultProxy
from tests.monitoring.support import at, black_hole, merged, running


async def test_postgres_outage_and_recovery(blockmon_config, pg_server):
    proxy = FaultProxy("127.0.0.1", pg_server.port)
    await proxy.start()
    config = merged(
        blockmon_config,
        postgres=pg_server.settings() | at(proxy.port) | {"connect_timeout": 2},
        monitoring={"check_timeout": 2},
    )
    try:
        async with running(config, schema_probe=False) as container:
            checker = await container.monitoring.health()
            engine = await container.postgres.engine()
            first = await checker.check("postgres", max_age=0)
            assert first.status == Status.PASS, first
            await proxy.stop()  # every open connection dies, new ones are refused
            down = await checker.check("postgres", max_age=0)
            assert down.status == Status.FAIL
            assert engine.sync_engine.pool.checkedin() == 0  # dead ones dropped
            await proxy.start()
            up = await checker.check("postgres", max_age=0)
            assert up.status == Status.PASS, up.output
            async with engine.connect() as conn:  # the application reconnects too
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await proxy.stop()


async def test_redis_lifecycle_is_logged_once_per_change(blockmon_config, redis_server, caplog):
    configure_logging(LogSettings(level="info"))
    caplog.set_level(logging.INFO, logger="blockmon.redis")
    proxy = FaultProxy("127.0.0.1", redis_server.port)
    await proxy.start()
    config = merged(
        blockmon_config,
        redis=redis_server.settings()
        | at(proxy.port)
        | {"retries": 0, "socket_connect_timeout": 1},
        monitoring={"check_timeout": 2},
    )
    try:
        async with running(config) as container:
            client = await container.redis.client()
            checker = await container.monitoring.health()
            await client.ping()
            await client.ping()
            await proxy.stop()
            for _ in range(3):
                assert (await checker.check("redis", max_age=0)).status == Status.FAIL
            await proxy.start()
            for _ in range(3):
                await client.ping()
            assert (await checker.check("redis", max_age=0)).status == Status.PASS
    finally:
        await proxy.stop()
    events = [str(r.msg.get("event")) for r in caplog.records if r.name == "blockmon.redis"]
    assert events == ["redis connected", "redis connection lost", "redis reconnected"]


async def test_a_blackholed_database_never_hangs_shutdown(blockmon_config):
    async with black_hole() as port:
        config = merged(blockmon_config, postgres=at(port), monitoring={"check_timeout": 0.5})
        async with running(config) as container:
            checker = await container.monitoring.health()
            result = await asyncio.wait_for(checker.check("postgres"), timeout=5)
            assert result.status == Status.FAIL and "timed out" in (result.output or "")
