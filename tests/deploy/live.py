"""A real Prometheus for the deploy tests (a free loopback port, a temporary data folder,
a one-second scrape of the given targets with the shipped rules), and blockmon
monitoring apps served over real HTTP for it to scrape."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from blockmon.testing.servers import free_port, wait_for
from tests.deploy.rules import RULES


@contextlib.contextmanager
def prometheus(targets: list[str]) -> Iterator[str]:
    """The base URL of a Prometheus scraping ``targets`` as job ``blockmon``; stopped
    and its folder removed afterwards, also on failure."""
    program = shutil.which("prometheus")
    assert program, "prometheus is missing: scripts/test installs Debian's prometheus package"
    with tempfile.TemporaryDirectory(prefix="blockmon-prometheus-") as folder:
        home = Path(folder)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "blockmon", "static_configs": [{"targets": targets}]}],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        address = f"127.0.0.1:{free_port()}"
        with (home / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    program,
                    f"--config.file={home / 'prometheus.yml'}",
                    f"--storage.tsdb.path={home / 'data'}",
                    f"--web.listen-address={address}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        url = f"http://{address}"
        try:
            wait_for("prometheus", lambda: httpx.get(f"{url}/-/ready").status_code == 200, 60)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.asynccontextmanager
async def serving(container: Any) -> AsyncIterator[str]:
    """``host:port`` of the container's monitoring app served by uvicorn in this loop."""
    app = await container.monitoring.app()
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def query(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    """The instant vector of ``expr``; fails naming it when Prometheus rejects it."""
    body = (await client.get("/api/v1/query", params={"query": expr})).json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
