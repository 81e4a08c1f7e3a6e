"""Issue 23, item 3: readiness that means ready. /readyz fails ("starting") until every
Resource of the container has started, fails ("shutting down") from the moment the
Lifespan begins to stop them, and, with ``monitoring.ready_requires_schema_head``, until
the schema was seen at head (once: a later migration by the next release must not take
this one out). /livez never depends on the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from dependency_injector import containers, providers
from sqlalchemy import text

from blockmon import ApplicationContainer, Lifespan, monitoring_app
from blockmon.config.settings import PostgresSettings
from blockmon.migrations.api import upgrade
from blockmon.testing.servers import PostgresServer
from tests.monitoring.support import merged, running

WAIT = 60.0


async def gate(start: asyncio.Event, stop: asyncio.Event) -> AsyncIterator[str]:
    """An application's Resource that starts and stops when the test says so."""
    await start.wait()
    yield "open"
    await stop.wait()


class Service(containers.DeclarativeContainer):
    config = providers.Configuration()
    blockmon = providers.Container(ApplicationContainer, config=config.blockmon)
    start: providers.Dependency[asyncio.Event] = providers.Dependency(instance_of=asyncio.Event)
    stop: providers.Dependency[asyncio.Event] = providers.Dependency(instance_of=asyncio.Event)
    gate = providers.Resource(gate, start, stop)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT:g} s: {what}"
        await asyncio.sleep(0.02)


async def test_readiness_waits_for_every_resource_and_fails_from_shutdown(
    blockmon_config: dict[str, Any],
) -> None:
    start, stop = asyncio.Event(), asyncio.Event()
    container = Service(start=providers.Object(start), stop=providers.Object(stop))
    container.config.blockmon.from_dict(merged(blockmon_config, monitoring={"cache_ttl": 0}))
    container.blockmon().monitoring.schema_probe.override(providers.Object(None))
    lifespan = Lifespan(container)
    lazy = monitoring_app(container.blockmon())
    async with client(lazy) as http:
        entering = asyncio.create_task(lifespan.__aenter__())
        await until(lambda: container.blockmon.monitoring.health.initialized, "health started")
        # blockmon's Resources run, the application's gate does not yet
        for path in ("/readyz", "/health/readiness"):  # the readiness group is /readyz
            starting = await http.get(path)
            assert starting.status_code == 503, path
            assert starting.json() == {"status": "fail", "output": "starting"}
        assert (await http.get("/livez")).status_code == 200
        start.set()
        await asyncio.wait_for(entering, WAIT)
        assert (await http.get("/readyz")).status_code == 200
        direct = await container.blockmon.monitoring.app()
        async with client(direct) as during:
            leaving = asyncio.create_task(lifespan.__aexit__(None, None, None))
            await asyncio.sleep(0.1)  # the gate holds the shutdown
            assert not leaving.done()
            for path in ("/readyz", "/health/readiness"):
                stopping = await during.get(path)
                assert stopping.status_code == 503, path
                assert stopping.json() == {"status": "fail", "output": "shutting down"}
            stop.set()
            await asyncio.wait_for(leaving, WAIT)
        # start, stop, start again in one process: ready again
        async with lifespan:
            assert (await http.get("/readyz")).status_code == 200


async def test_readiness_can_require_the_schema_at_head(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings
) -> None:
    config = merged(
        blockmon_config,
        postgres=blockmon_fresh_database.model_dump(),
        monitoring={"cache_ttl": 0, "ready_requires_schema_head": True},
    )
    async with running(config) as container, client(await container.monitoring.app()) as http:
        for path in ("/readyz", "/health/readiness"):
            behind = await http.get(path)
            assert behind.status_code == 503, path
            assert behind.json() == {
                "status": "fail",
                "output": "blockmon schema at (none), head is 0001",
            }
        await upgrade(container)
        assert (await http.get("/readyz")).status_code == 200
        # the next release migrated further: this one stays in the load balancer
        engine = await container.postgres.engine()
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE blockmon_alembic_version SET version_num = '0002'"))
        later = await http.get("/readyz")
        assert later.status_code == 200
        health = (await http.get("/health")).json()["checks"]["postgres:schema"][0]
        assert health["status"] == "warn"  # still said where it belongs


async def test_without_the_setting_a_schema_behind_only_warns(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings
) -> None:
    config = merged(
        blockmon_config, postgres=blockmon_fresh_database.model_dump(), monitoring={"cache_ttl": 0}
    )
    async with running(config) as container, client(await container.monitoring.app()) as http:
        answer = await http.get("/readyz")
        assert answer.status_code == 200 and answer.json()["status"] == "warn"


async def test_liveness_never_asks_the_database(
    blockmon_config: dict[str, Any], pg_server: PostgresServer
) -> None:
    config = merged(
        blockmon_config,
        postgres=pg_server.settings() | {"connect_timeout": 2},
        monitoring={"cache_ttl": 0, "check_timeout": 3},
    )
    async with (
        running(config, schema_probe=False) as container,
        client(await container.monitoring.app()) as http,
    ):
        assert (await http.get("/readyz")).status_code == 200
        await asyncio.to_thread(pg_server.stop)
        assert (await http.get("/readyz")).status_code == 503
        alive = await http.get("/livez")
        assert alive.status_code == 200 and alive.json() == {"status": "pass"}
