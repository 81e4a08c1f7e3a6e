"""A read replica whose URL names the primary (the usual development setting): a warning
that says so, reads still served by it, readiness untouched; another primary still fails."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from blockmon.config.settings import Settings
from blockmon.health import HealthChecker, Status
from blockmon.postgres.engine import engine_url
from blockmon.postgres.replicas import Router
from blockmon.testing.servers import PostgresServer
from tests.monitoring.support import http, merged, running

IS_THE_PRIMARY = "this replica is the primary (the same server as the writer); reads go to it"


def writer_url(settings: Settings) -> str:
    return engine_url(settings.postgres).render_as_string(hide_password=False)


async def test_a_replica_that_is_the_primary_warns_and_still_serves_reads(
    blockmon_config: dict[str, Any], blockmon_settings: Settings
) -> None:
    config = merged(
        blockmon_config,
        postgres={"replicas": [writer_url(blockmon_settings)]},
        monitoring={"replicas_critical": True},  # even then: not a reason to stop traffic
    )
    async with running(config) as container, http(container) as client:
        checker: HealthChecker = await container.monitoring.health()
        router: Router = await container.postgres.router()
        result = await checker.check("postgres-replica-0", max_age=0)
        assert (result.status, result.reason) == (Status.WARN, IS_THE_PRIMARY)
        assert (await checker.readiness()).status != Status.FAIL
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = (await client.get("/health")).json()
        assert body["checks"]["postgres-replica-0:replicationLag"][0]["status"] == "warn"
        for _ in range(3):  # after the check too: the router keeps it in rotation
            async with router.read_session() as session:
                conn = await session.connection()
                assert conn.sync_engine is router.readers[0].sync_engine
                assert (await session.execute(text("SELECT pg_is_in_recovery()"))).scalar() is False


async def test_a_replica_that_is_another_primary_still_fails(
    blockmon_config: dict[str, Any], pg_primary: PostgresServer
) -> None:
    config = merged(blockmon_config, postgres={"replicas": [pg_primary.url]})
    async with running(config) as container:
        checker: HealthChecker = await container.monitoring.health()
        result = await checker.check("postgres-replica-0", max_age=0)
        assert result.status == Status.FAIL
        assert result.reason == "not in recovery: this server is a primary"
