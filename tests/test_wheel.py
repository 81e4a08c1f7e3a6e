"""blockmon works installed from a wheel, not only from the editable checkout: build the
wheel, install it with the pinned dependencies into a fresh venv, and run the CLI there."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from blockmon.config.settings import Settings
from blockmon.postgres.engine import engine_url

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # a cold pip cache on a loaded machine; warm it takes ~30 s


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)  # type: ignore[call-overload, no-any-return]


def _build_and_install(tmp: Path) -> Path:
    wheels = tmp / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)]
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("blockmon-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            f"{wheel}[test]",  # the pytest plugin needs pytest: users install blockmon[test]
        ]
    )
    assert installed.returncode == 0, installed.stderr
    return env_dir


async def test_wheel_installs_and_runs(tmp_path: Path, blockmon_settings: Settings) -> None:
    env_dir = await asyncio.to_thread(_build_and_install, tmp_path)
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

    database_url = (
        engine_url(blockmon_settings.postgres)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
    redis = blockmon_settings.redis
    config.write_text(f"redis:\n  host: {redis.host}\n  port: {redis.port}\n")
    up = _run(
        [str(blockmon), "up", "--no-embedded", "-c", str(config)],
        cwd=outside,
        env={**env, "DATABASE_URL": database_url},
    )
    assert up.returncode == 0, up.stderr
    assert "postgres: pass" in up.stdout and "redis: pass" in up.stdout
