"""Against the real per-run database (migrated by blockmon's plugin with the service's
chain) and Redis, through the running app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from blockmon import ApplicationContainer, Status

from fastapi_service.application import create_app
from fastapi_service.containers import Container


@pytest_asyncio.fixture
async def client(blockmon_container: ApplicationContainer) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Container(blockmon=blockmon_container))  # already started by the fixture
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_create_read_delete(client: httpx.AsyncClient) -> None:
    created = await client.post("/users")
    assert created.status_code == 201
    user: dict[str, Any] = created.json()
    assert (await client.get(f"/users/{user['id']}")).json() == user
    assert user in (await client.get("/users")).json()
    assert (await client.delete(f"/users/{user['id']}")).status_code == 204
    assert (await client.get(f"/users/{user['id']}")).status_code == 404


async def test_health_passes_with_the_chain_at_head(client: httpx.AsyncClient) -> None:
    ready = await client.get("/monitoring/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "pass"}


async def test_a_read_session_route_without_the_lifespan(client: httpx.AsyncClient) -> None:
    """``attach`` in create_app: httpx's ASGITransport runs no lifespan, yet ReadSession works."""
    await client.post("/users")
    stats = await client.get("/stats")
    assert stats.status_code == 200, stats.text
    assert stats.json()["users"] >= 1


async def test_the_own_check_is_registered_by_its_resource(
    blockmon_container: ApplicationContainer,
) -> None:
    container = Container(blockmon=blockmon_container)
    checker = await blockmon_container.monitoring.health()
    await container.accounts_check.init()  # what the app's Lifespan does at start-up
    try:
        result = await checker.check("accounts", max_age=0)
        assert result.status is Status.PASS, result.reason
        readiness = await checker.readiness()  # critical by default: readiness counts it
        assert "accounts" in {r.component for r in readiness.results}
    finally:
        await container.accounts_check.shutdown()
    assert "accounts" not in {r.component for r in (await checker.report()).results}


async def test_details_always_shows_the_own_check(blockmon_config: dict[str, Any]) -> None:
    """The app's own lifespan starts the check's Resource; ``monitoring.details: always``
    (the default is ``never``) shows it in ``/monitoring/health``."""
    monitoring = {**blockmon_config["monitoring"], "details": "always"}
    container = Container()
    container.config.blockmon.from_dict({**blockmon_config, "monitoring": monitoring})
    app = create_app(container)
    async with app.router.lifespan_context(app):  # what uvicorn does at start and stop
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            health = (await client.get("/monitoring/health")).json()
    assert health["status"] == "pass", health
    assert any(name.startswith("accounts") for name in health["checks"]), health
