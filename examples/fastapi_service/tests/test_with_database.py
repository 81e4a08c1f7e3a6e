"""Against the real per-run database (migrated by blockmon's plugin with the service's
chain) and Redis, through the running app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from blockmon import ApplicationContainer

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
