"""Issue 23, item 1, for applications served by uvicorn or gunicorn: docs/deployment.md's
module (``Lifespan(container, drain_signals=True)``) and commands, run as written. After
SIGTERM, /monitoring/readyz is 503 "shutting down" at once, new connections are still
served for ``monitoring.shutdown_delay``, a request in flight finishes, the server exits."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from blockmon.config.settings import Settings
from tests.monitoring.support import free_port, merged, plain
from tests.test_main_job import database_url

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deployment.md"
BIN = Path(sys.executable).parent
WAIT = 60.0
SLOW = """\
import asyncio

from starlette.responses import PlainTextResponse
from starlette.routing import Route

from service import app


async def slow(request):
    await asyncio.sleep(float(request.query_params["seconds"]))
    return PlainTextResponse("done")


app.router.routes.append(Route("/slow", slow))
"""


def doc_module() -> str:
    (module,) = re.findall(r"```py\n(.*?)```", DOC.read_text(), re.S)
    assert module.startswith('"""service.py:')
    return str(module)


def doc_command(server: str) -> str:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    (command,) = [line for b in blocks for line in b.splitlines() if line.startswith(server)]
    return str(command)


@pytest.fixture
def service(
    tmp_path: Path, blockmon_config: dict[str, Any], blockmon_settings: Settings
) -> Iterator[dict[str, Any]]:
    (tmp_path / "service.py").write_text(doc_module())
    (tmp_path / "drain_service.py").write_text(SLOW)
    log = {"level": "info", "configure_root": True}  # blockmon's lines on the output
    config = merged(blockmon_config, log=log, monitoring={"shutdown_delay": 3})
    (tmp_path / "config.yml").write_text(yaml.safe_dump(plain(config)))
    keep = ("PG", "REDIS", "DATABASE_URL", "BLOCKMON_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONUNBUFFERED="1",
        BLOCKMON_CONFIG=str(tmp_path / "config.yml"),
        DATABASE_URL=database_url(blockmon_settings.postgres),
    )
    yield {"home": tmp_path, "env": env}


def launch(service: dict[str, Any], server: str, port: int) -> subprocess.Popen[str]:
    command = (
        doc_command(server)
        .replace("service:app", "drain_service:app")
        .replace("--port 8000", f"--port {port}")
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    )
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=service["home"],
        env=service["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


async def until(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if value := await condition():
                return value
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {WAIT:g} s: {what}")


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
async def test_the_documented_recipe_drains(service: dict[str, Any], server: str) -> None:
    port = free_port()
    process = launch(service, server, port)
    output = ""
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:

            async def ready() -> bool:
                return (await http.get("/monitoring/readyz")).status_code == 200

            await until(ready, f"{server} serving")
            slow = asyncio.ensure_future(http.get("/slow", params={"seconds": 5}))
            await asyncio.sleep(0.5)  # sent; it finishes after the delay (3 s) has ended
            process.send_signal(signal.SIGTERM)

            async def refusing() -> httpx.Response | None:
                async with httpx.AsyncClient(timeout=WAIT) as fresh:  # a new connection
                    answer = await fresh.get(f"http://127.0.0.1:{port}/monitoring/readyz")
                return answer if answer.status_code == 503 else None

            answer = await until(refusing, "/monitoring/readyz 503 after SIGTERM")
            assert answer.json() == {"status": "fail", "output": "shutting down"}
            async with httpx.AsyncClient(timeout=WAIT) as fresh:
                alive = await fresh.get(f"http://127.0.0.1:{port}/monitoring/livez")
                assert alive.status_code == 200
            done = await slow
            assert done.status_code == 200 and done.text == "done"
        output, _ = process.communicate(timeout=WAIT)
        assert process.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises it
        assert "shutdown: SIGTERM: readiness fails from now; serving 3 s more" in output
        assert "shutdown: delay over; stopping the server" in output
        # docs/deployment.md: the other steps' lines are blockmon serve's, not the server's
        assert "shutdown: stopped accepting" not in output
        assert "Application shutdown complete." in output
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=WAIT)
