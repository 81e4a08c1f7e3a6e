"""Issue 23, item 1: SIGTERM drains ``blockmon up --serve --app`` (and ``blockmon serve``,
the last test): /readyz answers 503
"shutting down" at once, serving goes on for ``monitoring.shutdown_delay``, then the
server stops accepting, a request in flight finishes, and the process exits 0. A second
signal skips what is left of the waits."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from blockmon.config.settings import PostgresSettings, Settings
from tests.monitoring.support import free_port, merged
from tests.test_main_job import child_env, database_url, kill, start, wait_for, write_config

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.drain.app:create_app"
WAIT = 60.0  # a generous bound for anything the process does on its own


async def launch(
    tmp_path: Path,
    config: dict[str, Any],
    database: PostgresSettings,
    command: str = "up",
    **monitoring: Any,
) -> tuple[asyncio.subprocess.Process, str, list[str]]:
    """``blockmon up --serve --app`` (or ``blockmon serve``) on a free port; its base URL
    and its stderr lines (read as they come, so the pipe never fills)."""
    port = free_port()
    config = merged(config, log={"level": "info", "format": "json"}, monitoring=monitoring)
    path = write_config(tmp_path, config)
    if command == "up":
        argv = ["up", "--no-embedded", "--serve", "--app", APP, "-c", path, "--port", str(port)]
    else:
        argv = ["serve", "-c", path, "--port", str(port)]
    env = child_env(DATABASE_URL=database_url(database), BLOCKMON_LOG_LEVEL="info")
    process = await start(sys.executable, "-m", "blockmon", *argv, env=env, cwd=ROOT)
    seen: list[str] = []
    await wait_for(process, "application" if command == "up" else "monitoring on", seen)
    errors: list[str] = []

    async def pump() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            errors.append(line.decode())

    asyncio.get_running_loop().create_task(pump())
    return process, f"http://127.0.0.1:{port}", errors


async def until(condition: Any, what: str) -> Any:
    """Poll ``condition()`` (async) until it returns something true; bounded by WAIT."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if value := await condition():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {WAIT:g} s: {what}")


def events(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


async def test_sigterm_fails_readiness_serves_on_then_drains(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    process, base, errors = await launch(
        tmp_path, blockmon_config, blockmon_fresh_database, shutdown_delay=3, shutdown_timeout=30
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            assert (await client.get("/readyz")).status_code == 200
            # in flight across the moment the server stops accepting (3 s after SIGTERM)
            slow = asyncio.ensure_future(client.get("/slow", params={"seconds": 6}))

            async def in_flight() -> bool:
                return bool((await client.get("/in-flight")).json()["in_flight"])

            await until(in_flight, "the slow request in flight")
            process.send_signal(signal.SIGTERM)

            async def refusing() -> httpx.Response | None:
                answer = await client.get("/readyz")
                return answer if answer.status_code == 503 else None

            answer = await until(refusing, "/readyz 503 after SIGTERM")
            assert answer.json() == {"status": "fail", "output": "shutting down"}
            # still serving during the delay, on a new connection too
            async with httpx.AsyncClient(base_url=base, timeout=WAIT) as fresh:
                assert (await fresh.get("/livez")).status_code == 200
                assert (await fresh.get("/in-flight")).json() == {"in_flight": 1}
            done = await slow
            assert done.status_code == 200 and done.text == "done"
        assert await asyncio.wait_for(process.wait(), WAIT) == 0, "".join(errors)
        await asyncio.sleep(0.2)  # the pump reads the last lines
        said = [e["event"] for e in events(errors) if e.get("logger") == "blockmon.shutdown"]
        assert said[0].startswith("shutdown: SIGTERM: readiness fails from now"), said
        assert said[1:] == [
            "shutdown: delay over; stopping the server",
            "shutdown: stopped accepting; waiting for requests in flight",
            "shutdown: server stopped",
            "shutdown: the container's Resources are closed",
        ], said
        stopping = next(e for e in events(errors) if e["event"].startswith("shutdown: stopped"))
        assert stopping["in_flight"] == 1 and stopping["timeout"] == 30
        assert "Traceback" not in "".join(errors)
    finally:
        await kill(process)


async def test_a_second_signal_skips_the_wait(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    process, base, errors = await launch(
        tmp_path, blockmon_config, blockmon_fresh_database, shutdown_delay=3600
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            process.send_signal(signal.SIGTERM)

            async def refusing() -> bool:
                return (await client.get("/readyz")).status_code == 503

            await until(refusing, "/readyz 503 after SIGTERM")
        process.send_signal(signal.SIGINT)
        # far less than the hour the delay would take
        assert await asyncio.wait_for(process.wait(), WAIT) == 0, "".join(errors)
        await asyncio.sleep(0.2)
        said = [e["event"] for e in events(errors) if e.get("logger") == "blockmon.shutdown"]
        assert "shutdown: second signal (SIGINT): not waiting any longer" in said, said
        assert "Traceback" not in "".join(errors)
    finally:
        await kill(process)


async def test_blockmon_serve_drains_too(
    blockmon_config: dict[str, Any], blockmon_settings: Settings, tmp_path: Path
) -> None:
    process, base, errors = await launch(
        tmp_path, blockmon_config, blockmon_settings.postgres, "serve", shutdown_delay=2
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            assert (await client.get("/readyz")).status_code == 200
            process.send_signal(signal.SIGTERM)

            async def refusing() -> httpx.Response | None:
                answer = await client.get("/readyz")
                return answer if answer.status_code == 503 else None

            answer = await until(refusing, "/readyz 503 after SIGTERM")
            assert answer.json() == {"status": "fail", "output": "shutting down"}
            async with httpx.AsyncClient(base_url=base, timeout=WAIT) as fresh:
                assert (await fresh.get("/livez")).status_code == 200  # still serving
        assert await asyncio.wait_for(process.wait(), WAIT) == 0, "".join(errors)
        await asyncio.sleep(0.2)
        said = [e["event"] for e in events(errors) if e.get("logger") == "blockmon.shutdown"]
        assert said[0].startswith("shutdown: SIGTERM: readiness fails from now"), said
        assert said[1:] == [
            "shutdown: delay over; stopping the server",
            "shutdown: stopped accepting; waiting for requests in flight",
            "shutdown: server stopped",
            "shutdown: the container's Resources are closed",
        ], said
        assert "Traceback" not in "".join(errors)
    finally:
        await kill(process)
