"""One Lifespan for every framework: real FastAPI, Starlette, Litestar and aiohttp apps
start the container's Resources, serve the mounted monitoring endpoints, and close
everything at shutdown without unclosed-connection warnings."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dependency_injector import containers, providers
from sqlalchemy import text

from blockmon import ApplicationContainer, Lifespan, monitoring_app
from blockmon.config.settings import Settings
from blockmon.migrations.api import alembic_config, upgrade
from blockmon.postgres.engine import create_engine
from tests.monitoring.support import plain

ROOT = Path(__file__).resolve().parent.parent


class App(containers.DeclarativeContainer):
    """An application's own container with blockmon inside, as the README shows it."""

    config = providers.Configuration()
    blockmon = providers.Container(ApplicationContainer, config=config.blockmon)


def _container(config: dict[str, Any]) -> App:
    app = App()
    app.config.blockmon.from_dict(config)
    return app


async def _probe(app: App) -> dict[str, Any]:
    engine = await app.blockmon.postgres.engine()
    async with engine.connect() as conn:
        one = (await conn.execute(text("SELECT 1"))).scalar()
    client = await app.blockmon.redis.client()
    return {"postgres": one, "redis": await client.ping()}


def _started(app: App) -> bool:
    return bool(app.blockmon.postgres.engine.initialized and app.blockmon.redis.client.initialized)


@pytest.fixture(scope="module", autouse=True)
def _schema_at_head(blockmon_settings: Settings) -> None:
    """As ``blockmon up`` leaves it, so health passes."""

    async def migrate() -> None:
        engine = create_engine(blockmon_settings.postgres)
        try:
            await upgrade(engine, config=alembic_config())
        finally:
            await engine.dispose()

    asyncio.run(migrate())


def _assert_status_page(response: Any) -> None:
    """The status page answers at the mount's root, its links relative to it."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="health"' in response.text


@pytest.fixture
def no_resource_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning of the test; after it, no ResourceWarning (unclosed socket,
    transport or connection) may be among them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    leaks += [str(w.message) for w in caught if "non-checked-in" in str(w.message)]
    assert leaks == []


def test_fastapi_lifespan_and_mounted_monitoring(
    blockmon_config: dict[str, Any], no_resource_warnings: list[Any]
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    container = _container(blockmon_config)
    app = FastAPI(lifespan=Lifespan(container))
    app.mount("/monitoring", monitoring_app(container.blockmon()))

    @app.get("/probe")
    async def probe() -> dict[str, Any]:
        return await _probe(container)

    before = TestClient(app).get("/monitoring/readyz")  # no lifespan: nothing started
    assert before.status_code == 503
    assert before.text.startswith("blockmon: not started")
    with TestClient(app) as client:
        assert _started(container)
        assert client.get("/probe").json() == {"postgres": 1, "redis": True}
        ready = client.get("/monitoring/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "pass"
        assert "postgres_connections_active" in client.get("/monitoring/metrics").text
        _assert_status_page(client.get("/monitoring/"))
        # docs/monitoring.md, Commands: mounted, a trailing slash is served, not redirected
        slash = client.get("/monitoring/livez/", follow_redirects=False)
        assert slash.status_code == 200 and slash.json() == {"status": "pass"}
    assert not _started(container)
    with TestClient(app) as client:  # a second start gets fresh Resources and a fresh app
        assert client.get("/monitoring/readyz").status_code == 200
        assert client.get("/probe").json() == {"postgres": 1, "redis": True}
    assert not _started(container)


def test_starlette_lifespan_and_mount(
    blockmon_config: dict[str, Any], no_resource_warnings: list[Any]
) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    container = _container(blockmon_config)

    async def probe(request: Request) -> JSONResponse:
        assert dict(request.state._state) == {}  # the Lifespan yields no state
        return JSONResponse(await _probe(container))

    app = Starlette(
        routes=[
            Route("/probe", probe),
            Mount("/monitoring", app=monitoring_app(container.blockmon())),
        ],
        lifespan=Lifespan(container),
    )
    with TestClient(app) as client:
        assert client.get("/probe").json() == {"postgres": 1, "redis": True}
        assert client.get("/monitoring/health").json()["status"] == "pass"
        assert client.get("/monitoring/livez").status_code == 200
    assert not _started(container)


def test_litestar_lifespan_and_mount(
    blockmon_config: dict[str, Any], no_resource_warnings: list[Any]
) -> None:
    from litestar import Litestar, asgi, get
    from litestar.testing import TestClient

    container = _container(blockmon_config)
    monitoring = monitoring_app(container.blockmon())

    @get("/probe")
    async def probe() -> dict[str, Any]:
        return await _probe(container)

    @asgi("/monitoring", is_mount=True)
    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        await monitoring(scope, receive, send)

    app = Litestar(route_handlers=[probe, mounted], lifespan=[Lifespan(container)])
    with TestClient(app) as client:
        assert _started(container)
        assert client.get("/probe").json() == {"postgres": 1, "redis": True}
        assert client.get("/monitoring/readyz").json()["status"] == "pass"
        _assert_status_page(client.get("/monitoring/"))
    assert not _started(container)


async def test_aiohttp_cleanup_ctx(
    blockmon_config: dict[str, Any], no_resource_warnings: list[Any]
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    container = _container(blockmon_config)

    async def probe(request: web.Request) -> web.Response:
        return web.json_response(await _probe(container))

    app = web.Application()
    app.router.add_get("/probe", probe)
    app.cleanup_ctx.append(Lifespan(container))
    async with TestClient(TestServer(app)) as client:
        assert _started(container)
        response = await client.get("/probe")
        assert await response.json() == {"postgres": 1, "redis": True}
    assert not _started(container)


_SERVICE = '''
"""A FastAPI service served by uvicorn (the test's stand-in for a user's app)."""
import os

import yaml
from dependency_injector import containers, providers
from fastapi import FastAPI
from sqlalchemy import text

from blockmon import ApplicationContainer, Lifespan, monitoring_app
from blockmon.config.settings import Settings
from blockmon.migrations.api import upgrade
from blockmon.postgres.engine import create_engine


async def marker():
    yield "marker"
    print("service: resources closed", flush=True)


class App(containers.DeclarativeContainer):
    config = providers.Configuration()
    blockmon = providers.Container(ApplicationContainer, config=config.blockmon)
    marker = providers.Resource(marker)


container = App()
with open(os.environ["SERVICE_CONFIG"]) as handle:
    container.config.blockmon.from_dict(yaml.safe_load(handle))
app = FastAPI(lifespan=Lifespan(container))
app.mount("/monitoring", monitoring_app(container.blockmon()))


@app.get("/probe")
async def probe():
    engine = await container.blockmon.postgres.engine()
    async with engine.connect() as conn:
        one = (await conn.execute(text("SELECT 1"))).scalar()
    return {"postgres": one, "redis": await (await container.blockmon.redis.client()).ping()}
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def test_fastapi_under_uvicorn_stops_cleanly_on_sigterm(
    tmp_path: Path, blockmon_config: dict[str, Any]
) -> None:
    (tmp_path / "service.py").write_text(_SERVICE)
    (tmp_path / "config.yml").write_text(yaml.safe_dump(_plain(blockmon_config)))
    port = _free_port()
    env = {
        **os.environ,
        "SERVICE_CONFIG": str(tmp_path / "config.yml"),
        "PYTHONWARNINGS": "always",  # unclosed sockets and transports are reported
        "PYTHONPATH": str(tmp_path),
    }
    command = [sys.executable, "-X", "dev", "-m", "uvicorn", "service:app", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/monitoring/livez", process)
        assert httpx.get(f"http://127.0.0.1:{port}/probe").json() == {
            "postgres": 1,
            "redis": True,
        }
        ready = httpx.get(f"http://127.0.0.1:{port}/monitoring/readyz")
        assert ready.status_code == 200, ready.text
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn re-raises the signal once it has shut down, so its exit says "SIGTERM".
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete." in err
    assert "service: resources closed" in out
    for leak in ("ResourceWarning", "Unclosed", "non-checked-in", "Task was destroyed"):
        assert leak not in err, err


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """The mapping as YAML can hold it (secrets as their values)."""
    from pydantic import SecretStr

    def convert(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return {k: convert(v) for k, v in config.items()}


def test_the_readmes_application_serves_as_written(
    blockmon_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's "Use it in your application" block, run as a module with an
    ``AlertService`` of its own: the injected route and the mounted endpoints answer."""
    from fastapi.testclient import TestClient

    text_ = (ROOT / "README.md").read_text()
    start = text_.index("## Use it in your application")
    block = text_[start:].split("```python\n", 1)[1].split("```", 1)[0]
    service = """
class AlertService:
    def __init__(self, engine, cache):
        self.engine, self.cache = engine, cache

    async def recent(self):
        from sqlalchemy import text
        async with self.engine.connect() as conn:
            value = (await conn.execute(text("SELECT 7"))).scalar()
        await self.cache.set("readme", "1", ttl=5)
        return [{"value": value, "cached": await self.cache.get("readme")}]
"""
    head, rest = block.split("\n\nclass App", 1)
    (tmp_path / "readme_app.py").write_text(f"{head}\n{service}\n\nclass App{rest}")
    (tmp_path / "config.yml").write_text(yaml.safe_dump(plain(blockmon_config)))
    monkeypatch.chdir(tmp_path)  # load_mapping() reads ./config.yml
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("DATABASE_URL", "REDIS_URL", "BLOCKMON_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    import readme_app  # type: ignore[import-not-found]

    try:
        with TestClient(readme_app.app) as client:
            response = client.get("/alerts")
            assert response.status_code == 200, response.text
            assert response.json() == [{"value": 7, "cached": "1"}]
            assert client.get("/monitoring/readyz").status_code == 200
    finally:
        sys.modules.pop("readme_app", None)
