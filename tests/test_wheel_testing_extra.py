"""``blockmon[testing]`` is the pytest plugin and nothing more: the wheel with that extra,
installed offline in a fresh venv, runs a test file on the plugin's fixtures against the
real servers, without any web framework, HTTP client or OpenTelemetry SDK installed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from wheelhouse import build

from blockmon.config.settings import Settings
from blockmon.postgres.engine import engine_url

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # a loaded machine; about 30 s here
# What the development extra carries for blockmon's own suite; a user's plugin does not.
NOT_INSTALLED = (
    "litestar",
    "aiohttp",
    "gunicorn",
    "opentelemetry.sdk",
    "fastapi",
    "hypothesis",
    "httpx",
    "xdist",
    "pytest_timeout",
)
CONFTEST = 'pytest_plugins = ["blockmon.testing", "blockmon.testing.deployments"]\n'
PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = -p no:cacheprovider
"""
TESTS = """
from sqlalchemy import text


async def test_the_engine(blockmon_engine):
    async with blockmon_engine.connect() as conn:
        assert (await conn.execute(text("SELECT current_database()"))).scalar().startswith(
            "blockmon_test_"
        )


async def test_the_cache(blockmon_cache):
    await blockmon_cache.set("k", "v", ttl=60)
    assert await blockmon_cache.get("k") == b"v"


async def test_the_unit_container(blockmon_unit_container):
    cache = await blockmon_unit_container.redis.cache()
    await cache.set("k", "v", ttl=60)
    assert await cache.get("k") == b"v"
"""
MISSING = """
import importlib.util, sys
missing = []
for name in sys.argv[1:]:
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        missing.append(name)
print(" ".join(missing))
"""


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)  # type: ignore[call-overload, no-any-return]


def plugin_venv(tmp: Path) -> Path:
    """A fresh venv with ``blockmon[testing]`` installed from wheels only (blockmon's,
    built here, and its dependencies repacked from this venv): no index, no checkout."""
    wheels = tmp / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(wheels), str(ROOT)]
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    build(["blockmon[testing]"], wheels, exclude={"blockmon"})
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    installed = _run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
         "--no-compile", "--disable-pip-version-check", "--find-links", str(wheels),
         "blockmon[testing]"]
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return env_dir


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_the_testing_extra_runs_the_plugin_alone(
    tmp_path: Path, blockmon_settings: Settings
) -> None:
    env_dir = await asyncio.to_thread(plugin_venv, tmp_path)
    python = str(env_dir / "bin" / "python")
    present = _run([python, "-c", MISSING, *NOT_INSTALLED])
    assert present.returncode == 0, present.stderr
    assert present.stdout.split() == [], f"installed with blockmon[testing]: {present.stdout}"

    project = tmp_path / "app"  # not the checkout: nothing of src/ or tests/ on the path
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text(PYTEST_INI)
    (project / "tests" / "conftest.py").write_text(CONFTEST)
    (project / "tests" / "test_app.py").write_text(TESTS)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "REDIS", "DATABASE", "BLOCKMON", "PYTHON", "VIRTUAL_ENV"))
    }
    redis = blockmon_settings.redis
    env["DATABASE_URL"] = engine_url(blockmon_settings.postgres).render_as_string(
        hide_password=False
    )
    env["REDIS_URL"] = (
        redis.url.get_secret_value()
        if redis.url is not None
        else f"redis://{redis.host}:{redis.port}/{redis.db}"
    )
    done = _run([python, "-m", "pytest", "-q", "tests"], cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout
