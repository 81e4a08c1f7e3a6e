"""The "embed blockmon in your app" tutorial, done as a new user does it: blockmon's wheel
built and installed offline in a fresh virtualenv, then every command of
examples/fastapi_service/README.md run in order in a copy of the service; then the
other order of the two migration chains on a second database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest
from wheelhouse import build

from blockmon.config.settings import Settings
from blockmon.testing import create_database, drop_database
from tests.test_migrations_cli import dsn

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fastapi_service"
TIMEOUT = 600
README_PORT = "8000"

# Every command of the README, in order, with what its output must hold.
EXPECTED: list[tuple[str, tuple[str, ...]]] = [
    ('pip install "blockmon[testing]" fastapi httpx', ()),
    (
        "blockmon up --no-embedded",
        ("blockmon: schema: at head (a001, in alembic_version)", "postgres:schema: pass"),
    ),
    ("alembic upgrade head", ()),
    ("alembic check", ("No new upgrade operations detected",)),
    ("blockmon db check", ("schema matches the models and is at head",)),
    ("blockmon db --alembic-config alembic.ini current", ("schema at a001, at head",)),
    (
        "blockmon health",
        ("postgres:schema  pass", "schema app a001", "overall: pass"),
    ),
    ("pytest", ("11 passed",)),
    ("uvicorn fastapi_service.application:app --port 8000", ()),
    ("curl -s -X POST localhost:8000/users", ('"id":1', '"is_active":true')),
    ("curl -s localhost:8000/monitoring/readyz", ('{"status":"pass"}',)),
    ("curl -s localhost:8000/monitoring/health", ('{"status":"pass"}',)),  # details: never
]


def readme_commands() -> list[str]:
    text = (EXAMPLE / "README.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, flags=re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_readme_shows_the_alembic_ini_and_pytest_config_the_service_uses() -> None:
    """What the tutorial shows of ``alembic.ini`` (``prepend_sys_path = .``) and of the
    pytest configuration (``asyncio_mode = "auto"``) is what the service's files hold."""
    text = (EXAMPLE / "README.md").read_text()
    (ini,) = re.findall(r"```ini\n(.*?)```", text, flags=re.S)
    (toml,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert "prepend_sys_path = .\n" in ini and ini in (EXAMPLE / "alembic.ini").read_text()
    assert 'asyncio_mode = "auto"\n' in toml
    assert toml in (EXAMPLE / "pyproject.toml").read_text()


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)  # type: ignore[call-overload, no-any-return]


def shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(["bash", "-c", command], env=env, cwd=cwd)


def fresh_venv(tmp: Path) -> tuple[Path, Path]:
    """The venv, and a directory of wheels (blockmon's and every dependency) to install from."""
    wheels = tmp / "wheels"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(wheels), str(ROOT)]
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    build(["blockmon[testing]", "fastapi", "httpx"], wheels, exclude={"blockmon"})
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    return env_dir, wheels


def user_env(env_dir: Path, wheels: Path, settings: Settings, database: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "REDIS", "DATABASE", "BLOCKMON", "PYTHON", "VIRTUAL_ENV", "PIP"))
    }
    redis = settings.redis
    env.update(
        PATH=f"{env_dir / 'bin'}:{env['PATH']}",
        VIRTUAL_ENV=str(env_dir),
        DATABASE_URL=dsn(settings.postgres, database=database),
        REDIS_URL=(  # the per-run Redis: host and port, or an embedded server's socket
            redis.url.get_secret_value()
            if redis.url is not None
            else f"redis://{redis.host}:{redis.port}/{redis.db}"
        ),
        PIP_NO_INDEX="1",  # offline: every pip call installs from the wheels only
        PIP_FIND_LINKS=str(wheels),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # No byte code at install: compiling all 70 distributions costs 5 CPU-s, while the
        # commands compile (and cache) only what they import, about 2 s.
        PIP_COMPILE="0",
    )
    return env


def free_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_readme_commands_are_the_tested_ones() -> None:
    assert readme_commands() == [command for command, _ in EXPECTED]


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~50 s here; minutes under scripts/stress-test's CPU hogs
async def test_tutorial_from_the_wheel_offline(tmp_path: Path, blockmon_settings: Settings) -> None:
    env_dir, wheels = await asyncio.to_thread(fresh_venv, tmp_path)
    service = tmp_path / "service"
    shutil.copytree(EXAMPLE, service, ignore=shutil.ignore_patterns("__pycache__"))
    first, second = (f"tutorial_{os.getpid()}_{n}" for n in ("a", "b"))
    try:
        await asyncio.to_thread(
            follow_the_readme, env_dir, wheels, blockmon_settings, first, service
        )
        await create_database(blockmon_settings.postgres, second)
        await asyncio.to_thread(
            app_chain_first, env_dir, wheels, blockmon_settings, second, service
        )
    finally:
        await drop_database(blockmon_settings.postgres, first)
        await drop_database(blockmon_settings.postgres, second)


def follow_the_readme(
    env_dir: Path, wheels: Path, settings: Settings, database: str, service: Path
) -> None:
    env = user_env(env_dir, wheels, settings, database)
    port = free_port()  # the README's 8000 may be taken on a shared machine
    server: subprocess.Popen[str] | None = None
    try:
        for command, expected in EXPECTED:
            command = command.replace(README_PORT, port)
            if command.startswith("uvicorn"):
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {command}"],
                    env=env, cwd=service, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                wait_for(f"http://127.0.0.1:{port}/monitoring/livez", server)
                continue
            result = shell(command, env, service)
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{command}\n{output}"
            for needle in expected:
                assert needle in output, f"{command}: {needle!r} not in\n{output}"
        assert server is not None
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
        assert "Application shutdown complete." in err, err
        assert "ResourceWarning" not in err and "Traceback" not in err, err
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.communicate()


def wait_for(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def app_chain_first(
    env_dir: Path, wheels: Path, settings: Settings, database: str, service: Path
) -> None:
    """The other order: the service's `alembic upgrade head` on an empty database first."""
    env = user_env(env_dir, wheels, settings, database)
    for command in (
        "alembic upgrade head",
        "blockmon db upgrade head",
        "alembic check",
        "blockmon db check",
    ):
        result = shell(command, env, service)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    health = shell("blockmon health --json", env, service)
    assert health.returncode == 0, health.stderr
    body = json.loads(health.stdout)
    assert body["status"] == "pass", body
    assert body["checks"]["postgres:schema"][0]["observedValue"] == {"app": "a001"}
