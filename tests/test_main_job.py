"""The main job as real processes: ``blockmon up --serve --app alert_rules.web:create_app``
and ``bash scripts/up``, each answering monitoring and example-API requests over HTTP on
one port, then stopping cleanly on SIGINT."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from blockmon.cli import main
from blockmon.config.settings import MonitoringSettings, PostgresSettings
from blockmon.postgres.engine import engine_url
from blockmon.provisioning.servers import connect
from tests.monitoring.support import free_port, merged, plain

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "alert_rules"
APP = "alert_rules.web:create_app"
DEFAULT_PORT = MonitoringSettings().http_port
START_TIMEOUT = 120.0  # bootstrap (a no-op when done), imports, migrations on a loaded machine
STOP_TIMEOUT = 30.0


def database_url(settings: PostgresSettings) -> str:
    url = engine_url(settings).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def child_env(**extra: str) -> dict[str, str]:
    """This environment without PG*/REDIS* variables (the test decides the servers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))}
    return {**env, "PYTHONUNBUFFERED": "1", "BLOCKMON_LOG_LEVEL": "warning", **extra}


def write_config(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(plain(config)))
    return str(path)


async def wait_for(process: asyncio.subprocess.Process, text: str, seen: list[str]) -> str:
    """The next stdout line holding ``text``; fails after START_TIMEOUT or at EOF."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(process.stdout.readline(), left)
        except TimeoutError:
            break
        if not raw:
            break
        line = raw.decode()
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"{text!r} not printed; output so far: {seen}")


async def stop(process: asyncio.subprocess.Process, *, group: bool = False) -> str:
    """SIGINT (to the process group when ``group``); the exit must be 0 within a bound."""
    if group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    err = (await asyncio.wait_for(process.stderr.read(), STOP_TIMEOUT)).decode()
    assert await asyncio.wait_for(process.wait(), STOP_TIMEOUT) == 0, err
    return err


async def kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)


async def start(*command: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C would reach
    )


def readme_curls() -> list[str]:
    """The curl lines of examples/alert_rules/README.md, which use the default port."""
    lines = (EXAMPLE / "README.md").read_text().splitlines()
    curls = [line for line in lines if line.startswith("curl ")]
    assert len(curls) == 4 and all(f"localhost:{DEFAULT_PORT}/" in c for c in curls), curls
    return curls


def run_typed(line: str, port: int) -> str:
    typed = line.replace(f"localhost:{DEFAULT_PORT}/", f"localhost:{port}/")
    done = subprocess.run(
        ["bash", "-c", f"{typed} --fail --silent --show-error"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, (typed, done.stderr)
    return done.stdout.replace(" ", "")


def test_every_documented_url_uses_the_default_port() -> None:
    """Monitoring URLs and curl lines in the README and docs use monitoring.http_port's default."""
    pattern = re.compile(r"(?:http://|curl .*?)(?:localhost|127\.0\.0\.1|0\.0\.0\.0):(\d+)")
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *EXAMPLE.glob("*.md")]
    wrong = [
        f"{doc.name}: {match.group(0)}"
        for doc in docs
        for match in pattern.finditer(doc.read_text())
        if int(match.group(1)) != DEFAULT_PORT
    ]
    assert wrong == []


async def rename_rule(settings: PostgresSettings, rule_id: int, name: str) -> None:
    conn = await connect(settings)
    try:
        await conn.execute("UPDATE alert_rules SET name = $1 WHERE id = $2", name, rule_id)
    finally:
        await conn.close()


async def test_up_serves_the_example_next_to_monitoring(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    port = free_port()
    path = write_config(tmp_path, blockmon_config)
    up = ["up", "--no-embedded", "--serve", "--app", APP, "-c", path, "--port", str(port)]
    env = child_env(DATABASE_URL=database_url(blockmon_fresh_database), PYTHONPATH=str(EXAMPLE))
    process = await start(sys.executable, "-m", "blockmon", *up, env=env, cwd=tmp_path)
    try:
        seen: list[str] = []
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/readyz" in await wait_for(process, "monitoring on", seen)
        line = await wait_for(process, "application", seen)
        assert line == f"blockmon: application {APP} on {base}/\n"
        async with httpx.AsyncClient(base_url=base, timeout=15) as client:
            assert (await client.get("/readyz")).status_code == 200
            user = await client.post("/users", json={"telegram_id": 4242, "username": "ada"})
            assert user.status_code == 201, user.text
            user_id = user.json()["id"]
            rule = {"name": "cpu-high", "rule_type": "threshold", "conditions": {"above": 0.9}}
            created = await client.post(f"/users/{user_id}/rules", json=rule)
            assert created.status_code == 201, created.text
            rule_id = created.json()["id"]
            first = (await client.get(f"/rules/{rule_id}")).json()
            assert {k: first[k] for k in rule} == rule and first["user_id"] == user_id
            # changed behind the cache's back: the second read still answers from Redis
            await rename_rule(blockmon_fresh_database, rule_id, "renamed-in-sql")
            assert (await client.get(f"/rules/{rule_id}")).json() == first
            assert (await client.get(f"/users/{user_id}/rules")).json()[0][
                "name"
            ] == "renamed-in-sql"
            assert (await client.get("/rules/999999")).status_code == 404
            missing_user = await client.post("/users/999999/rules", json=rule)
            assert missing_user.status_code == 404
            bad = await client.post(f"/users/{user_id}/rules", json={"name": "x"})
            assert bad.status_code == 422 and "rule_type" in bad.json()["error"]
            metrics = (await client.get("/metrics")).text
        assert 'postgres_queries_total{operation="insert",status="success"}' in metrics
        err = await stop(process)
        assert "Traceback" not in err
    finally:
        await kill(process)


async def test_scripts_up_runs_the_main_job(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    port = free_port()
    config = merged(blockmon_config, log={"level": "warning"})
    env = child_env(
        BLOCKMON_CONFIG=write_config(tmp_path, config),
        DATABASE_URL=database_url(blockmon_fresh_database),
    )
    process = await start(
        "bash", str(ROOT / "scripts" / "up"), "--port", str(port), env=env, cwd=ROOT
    )
    try:
        seen: list[str] = []
        base = f"http://127.0.0.1:{port}"
        assert "GET /rules/{id}" in await wait_for(process, "example API", seen)
        assert f"{base}/metrics" in await wait_for(process, "monitoring on", seen)
        assert f"on {base}/" in await wait_for(process, f"application {APP}", seen)
        async with httpx.AsyncClient(base_url=base, timeout=15) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert "POST /users" in (await client.get("/")).json()["endpoints"]
            user = await client.post("/users", json={"telegram_id": 7, "username": "grace"})
            assert user.status_code == 201, user.text
            assert (await client.get(f"/users/{user.json()['id']}/rules")).json() == []
        # The example README's curl lines, as typed (on this test's port).
        outputs = [await asyncio.to_thread(run_typed, line, port) for line in readme_curls()]
        assert '"id"' in outputs[0] and all('"name":"cpu-high"' in o for o in outputs[2:])
        await stop(process, group=True)
    finally:
        await kill(process)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("alert_rules", "expected MODULE:FACTORY, got 'alert_rules'"),
        (":create_app", "expected MODULE:FACTORY, got ':create_app'"),
        ("no_such_module_bm:create_app", "cannot import module 'no_such_module_bm'"),
        (
            "blockmon.monitoring.app:no_such_factory",
            "module 'blockmon.monitoring.app' has no attribute",
        ),
        (
            "blockmon.monitoring.app:PATHS",
            "blockmon.monitoring.app:PATHS is a tuple, not a callable factory",
        ),
        ("broken_app_bm:create_app", "importing 'broken_app_bm' failed: RuntimeError: boom"),
    ],
)
def test_bad_app_is_a_usage_error(
    app: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    (tmp_path / "broken_app_bm.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)  # the current directory is importable, as with uvicorn
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["up", "--serve", "--app", app]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blockmon: error: up: argument --app: "), err
    assert message in err and err.count("\n") == 1


def test_app_needs_serve(capsys: Any) -> None:
    assert main(["up", "--app", "blockmon.monitoring.app:create_app"]) == 2
    assert capsys.readouterr().err == "blockmon: error: up: argument --app: needs --serve\n"


def test_factory_must_return_an_asgi_app(
    blockmon_config: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    path = write_config(tmp_path, merged(blockmon_config, log={"level": "warning"}))
    args = ["up", "--no-embedded", "--serve", "--app", "builtins:repr", "-c", path]
    assert main([*args, "--port", str(free_port())]) == 2  # repr() gives a str
    err = capsys.readouterr().err
    assert err == "blockmon: error: --app: builtins:repr returned str, not an ASGI app\n"


async def test_async_and_dotted_factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from starlette.applications import Starlette

    from blockmon.monitoring.mount import AppFactory, load_factory

    (tmp_path / "async_app_bm.py").write_text(
        "class Apps:\n    @staticmethod\n    async def build(container):\n"
        "        return container.app\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    factory = load_factory("async_app_bm:Apps.build")
    assert factory.spec == "async_app_bm:Apps.build"
    app = Starlette()
    assert await factory.build(SimpleNamespace(app=app)) is app  # awaited
    assert await AppFactory("x:y", lambda c: c.app).build(SimpleNamespace(app=app)) is app
