"""blockmon works installed from a wheel, not only from the editable checkout: build the
wheel and install it into a fresh venv, offline (no package index), and run the CLI there."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from blockmon.testing.servers import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # a loaded machine; it takes ~15 s


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)  # type: ignore[call-overload, no-any-return]


def offline_venv(tmp: Path) -> Path:
    """Build blockmon's wheel and install it into a fresh venv without the package index:
    the build backend (hatchling, in the dev extra) and the pinned dependencies are the
    ones this test venv already has, reached through a ``.pth`` file."""
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = _run([*pip, "wheel", "--no-index", "--no-build-isolation", "--no-deps", "-q",
                  "-w", str(wheels), str(ROOT)])  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("blockmon-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    installed = _run([*pip, "--python", str(python), "install", "-q", "--no-index", "--no-deps",
                      "--no-compile", str(wheel)])  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    where = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    deps = Path(where.stdout.strip()) / "blockmon-test-deps.pth"
    deps.write_text(sysconfig.get_path("purelib") + "\n")  # after the wheel's own files
    return env_dir


@pytest.mark.slow
async def test_wheel_installs_and_runs(
    tmp_path: Path, pg_server: PostgresServer, redis_server: RedisServer
) -> None:
    env_dir = await asyncio.to_thread(offline_venv, tmp_path)
    python, blockmon = env_dir / "bin" / "python", env_dir / "bin" / "blockmon"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "REDIS", "DATABASE", "BLOCKMON", "PYTHON", "VIRTUAL_ENV"))
    }
    outside = tmp_path / "elsewhere"  # not the checkout: no src/ on the path
    outside.mkdir()

    where = _run(
        [str(python), "-c", "import blockmon, blockmon.testing; print(blockmon.__file__)"],
        cwd=outside,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(env_dir)), where.stdout
    assert (Path(where.stdout.strip()).parent / "py.typed").is_file()

    config = outside / "config.yml"
    config.write_text("postgres:\n  password: Wh33l-secret\n  pool_size: 4\n")
    shown = _run(
        [str(blockmon), "config", "show", "--json", "-c", str(config)], cwd=outside, env=env
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["postgres"]["password"] == "***" and data["postgres"]["pool_size"] == 4
    assert "Wh33l-secret" not in shown.stdout

    config.write_text("postgres:\n  pool_size: -3\n")
    bad = _run([str(blockmon), "config", "show", "-c", str(config)], cwd=outside, env=env)
    assert (bad.returncode, bad.stderr) == (
        2,
        "blockmon: error: postgres.pool_size: must be >= 1, got -3\n",
    )

    config.write_text("redis:\n  db: 0\n")
    up = _run(
        [str(blockmon), "up", "--no-embedded", "-c", str(config)],
        cwd=outside,
        env={**env, "DATABASE_URL": pg_server.url, "REDIS_URL": redis_server.url},
    )
    assert up.returncode == 0, up.stderr
    assert "postgres: pass" in up.stdout and "redis: pass" in up.stdout
    # Configured servers are named, without credentials.
    assert f"blockmon: postgres: postgres@{pg_server.address}/postgres\n" in up.stdout
    assert f"blockmon: redis: {redis_server.address}/0\n" in up.stdout
