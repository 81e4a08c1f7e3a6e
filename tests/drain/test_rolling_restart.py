"""Issue 23, item 2, the proof: a rolling restart behind a real load balancer drops no
request. HAProxy (Debian's package, `scripts/test-programs`) health-checks /readyz of two
instances of the example service (``blockmon up --serve --app alert_rules.web:create_app``,
one database); a client sends a steady stream of requests that write to PostgreSQL and
read through the Redis cache; each instance in turn gets SIGTERM and is started again.
HAProxy retries nothing (``retries 0``), so a request sent to an instance that no longer
answers would count as failed."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from blockmon.config.settings import PostgresSettings
from tests.monitoring.support import free_port, merged
from tests.test_main_job import child_env, database_url, kill, start, wait_for, write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "alert_rules"
APP = "alert_rules.web:create_app"
WAIT = 60.0
DELAY = 2.0  # monitoring.shutdown_delay: well above HAProxy's fall x inter (2 x 0.2 s)
CLIENTS = 4

HAPROXY_CFG = """\
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 0
frontend service
    bind 127.0.0.1:{port}
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
"""

pytestmark = pytest.mark.slow


def haproxy() -> str:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert os.access(found, os.X_OK), "haproxy missing: run scripts/test-programs (as root)"
    return found


@dataclass
class Load:
    """The client's tally: requests sent, the failures (with what went wrong)."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)


async def steady_stream(base: str, load: Load, stop: asyncio.Event, worker: int) -> None:
    """Create a user (a PostgreSQL write), read their rules (Redis, PostgreSQL on a miss),
    one request after the other, until ``stop``."""
    ids = itertools.count(worker * 1_000_000 + 1)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not stop.is_set():
            for request in ("user", "rules"):
                load.sent += 1
                try:
                    if request == "user":
                        answer = await client.post(
                            "/users", json={"telegram_id": next(ids), "username": "rolling"}
                        )
                        expected = 201
                        user_id = answer.json()["id"] if answer.status_code == 201 else 0
                    else:
                        answer = await client.get(f"/users/{user_id}/rules")
                        expected = 200
                    if answer.status_code != expected:
                        load.failed.append(f"{request}: {answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as error:
                    load.failed.append(f"{request}: {type(error).__name__}: {error}")
            await asyncio.sleep(0.01)


class Instance:
    """One ``blockmon up --serve --app`` process on a fixed port, restartable."""

    def __init__(self, name: str, port: int, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.port, self.argv, self.env = name, port, argv, env
        self.process: asyncio.subprocess.Process | None = None
        self.errors: list[str] = []

    async def start(self) -> None:
        argv = [*self.argv, "--port", str(self.port)]
        self.process = await start(sys.executable, "-m", "blockmon", *argv, env=self.env, cwd=ROOT)
        await wait_for(self.process, "application", [])
        process = self.process

        async def pump() -> None:
            assert process.stderr is not None and process.stdout is not None
            async for line in process.stderr:
                self.errors.append(line.decode())

        asyncio.get_running_loop().create_task(pump())

    async def terminate(self) -> float:
        """SIGTERM; seconds until the process exited (0)."""
        assert self.process is not None
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), WAIT)
        assert code == 0, "".join(self.errors)
        return time.monotonic() - sent

    async def kill(self) -> None:
        if self.process is not None:
            await kill(self.process)


async def until_logged(lines: list[str], start: int, text: str) -> None:
    """Until HAProxy said ``text`` (server state changes go to its stderr) after ``start``."""
    deadline = time.monotonic() + WAIT
    while not any(text in line for line in lines[start:]):
        assert time.monotonic() < deadline, f"HAProxy never said {text!r}: {lines[-20:]}"
        await asyncio.sleep(0.05)


async def test_a_rolling_restart_behind_haproxy_drops_no_request(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    program = haproxy()
    config = merged(
        blockmon_config,
        log={"level": "warning"},
        monitoring={"shutdown_delay": DELAY, "shutdown_timeout": 20},
    )
    argv = ["up", "--no-embedded", "--serve", "--app", APP, "-c", write_config(tmp_path, config)]
    env = child_env(
        DATABASE_URL=database_url(blockmon_fresh_database),
        PYTHONPATH=str(EXAMPLE),
        ALERTS_CACHE_TTL="0.5",  # reads reach PostgreSQL too, not only the cache
    )
    instances = [Instance(name, free_port(), argv, env) for name in ("a", "b")]
    front = free_port()
    servers = "\n".join(f"    server {i.name} 127.0.0.1:{i.port} check" for i in instances)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=front, servers=servers))
    balancer: asyncio.subprocess.Process | None = None
    said: list[str] = []
    load, stop = Load(), asyncio.Event()
    clients: list[asyncio.Task[None]] = []
    try:
        for instance in instances:  # one after the other: the first one migrates
            await instance.start()
        balancer = await asyncio.create_subprocess_exec(
            program,
            "-db",
            "-f",
            str(cfg),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

        async def read_balancer() -> None:
            assert balancer is not None and balancer.stdout is not None
            async for line in balancer.stdout:
                said.append(line.decode())

        reader = asyncio.create_task(read_balancer())
        base = f"http://127.0.0.1:{front}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
            deadline = time.monotonic() + WAIT
            while True:  # HAProxy listening and routing
                try:
                    if (await probe.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"HAProxy not answering: {said}"
                await asyncio.sleep(0.1)
        clients = [asyncio.create_task(steady_stream(base, load, stop, n)) for n in range(CLIENTS)]
        await asyncio.sleep(2)
        drains = {}
        for instance in instances:
            before = len(said)
            drains[instance.name] = await instance.terminate()
            assert any(f"instances/{instance.name} is DOWN" in line for line in said[before:])
            await instance.start()
            await until_logged(said, before, f"instances/{instance.name} is UP")
            await asyncio.sleep(1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), WAIT)
        print(  # the numbers the issue asks for (pytest -s shows them)
            f"\nrolling restart: {load.sent} requests sent, {len(load.failed)} failed; "
            + ", ".join(f"{k} drained in {v:.2f} s" for k, v in drains.items())
            + f" (shutdown_delay {DELAY:g} s)"
        )
        assert load.failed == [], load.failed[:20]
        assert load.sent >= 100, load.sent
        reader.cancel()
    finally:
        stop.set()
        for task in clients:
            task.cancel()
        if balancer is not None and balancer.returncode is None:
            balancer.terminate()
            await asyncio.wait_for(balancer.wait(), WAIT)
        for instance in instances:
            await instance.kill()
