"""Issue 15: multi-process metrics. The example service under real `uvicorn --workers 2`
and gunicorn with uvicorn workers, started by the commands of docs/deployment.md: every
worker's /metrics shows the same totals, pool gauges add up over the workers, and a
killed worker's series go (gunicorn's ``child_exit`` hook, blockmon's sweep for uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from blockmon.config.settings import Settings
from blockmon.metrics.multiprocess import Mirror, publish_every
from blockmon.postgres.engine import engine_url
from blockmon.testing import create_database, delete_keys, drop_database
from blockmon.testing.servers import free_port
from tests.monitoring.support import plain

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi_service"
DOC = ROOT / "docs" / "deployment.md"
BIN = Path(sys.executable).parent
SCRAPES = os.environ.get("BLOCKMON_MP_SCRAPES")  # a file to keep two workers' scrapes in
REQUESTS = 40  # GET /users: one SELECT each
WAIT = 90.0  # seconds: generous bounds for start-up, spreading and replacement

# The test's stand-in for the service's module: the same app, with the worker's pid on
# every response so the test knows which worker answered.
_SERVICE = """
import os

from fastapi_service.application import app


@app.middleware("http")
async def worker_pid(request, call_next):
    response = await call_next(request)
    response.headers["x-worker-pid"] = str(os.getpid())
    return response
"""


def doc_commands() -> list[str]:
    text = DOC.read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def doc_hook() -> str:
    (hook,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return str(hook)


@pytest.fixture
def service(tmp_path: Path, blockmon_settings: Settings) -> Iterator[dict[str, Any]]:
    """A copy of the example service with its own database, Redis key prefix and metrics
    directory, migrated by its own `alembic upgrade head`; all removed afterwards."""
    name = f"bm_mp_{secrets.token_hex(6)}"
    prefix = f"{blockmon_settings.redis.key_prefix}mp-{secrets.token_hex(4)}:"
    pg = asyncio.run(create_database(blockmon_settings.postgres, name))
    try:
        home = tmp_path / "service"
        shutil.copytree(EXAMPLE, home, ignore=shutil.ignore_patterns("tests", "__pycache__"))
        config = yaml.safe_load((home / "config.yml").read_text())
        config["redis"] = {"key_prefix": prefix}
        (home / "config.yml").write_text(yaml.safe_dump(config))
        (home / "mp_service.py").write_text(_SERVICE)
        (home / "gunicorn.conf.py").write_text(doc_hook())
        redis = blockmon_settings.redis
        env = {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "DATABASE_URL": engine_url(pg).render_as_string(hide_password=False),
            "REDIS_URL": redis.url.get_secret_value()
            if redis.url
            else f"redis://{redis.host}:{redis.port}/{redis.db}",
        }
        migrated = subprocess.run(
            [str(BIN / "alembic"), "upgrade", "head"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr
        yield {"home": home, "env": env, "metrics": tmp_path / "blockmon-metrics"}
    finally:
        asyncio.run(drop_database(blockmon_settings.postgres, name))
        asyncio.run(delete_keys(blockmon_settings, prefix))


def _start(service: dict[str, Any], server: str, port: int) -> subprocess.Popen[str]:
    """docs/deployment.md's commands (the variable, the empty directory, one server) in
    one shell, with this test's directory, port and module (which adds the pid header)."""
    setup = [c for c in doc_commands() if not c.startswith(("uvicorn", "gunicorn"))]
    (command,) = [c for c in doc_commands() if c.startswith(server)]
    script = "\n".join([*setup, f"exec {command}"])
    assert '"$PWD/prometheus-multiproc"' in script  # the directory the test replaces
    script = (
        script.replace('"$PWD/prometheus-multiproc"', str(service["metrics"]))
        .replace("fastapi_service.application:app", "mp_service:app")
        .replace("--port 8000", f"--port {port}")
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    )
    return subprocess.Popen(
        ["bash", "-ec", script],
        cwd=service["home"],
        env=service["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _get(url: str) -> httpx.Response:
    with httpx.Client(timeout=10) as client:  # a new connection: any worker may take it
        return client.get(url)


def _spread(url: str, count: int, pool: ThreadPoolExecutor) -> set[str]:
    """``count`` GETs of ``url``, four at a time; the pids that answered."""
    responses = list(pool.map(lambda _: _get(url), range(count)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return {r.headers["x-worker-pid"] for r in responses}


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _one(values: dict[Any, float], name: str, **labels: str) -> float:
    return values[(name, tuple(sorted(labels.items())))]


def _totals(text: str) -> dict[str, float]:
    """What every worker's scrape must agree on."""
    v = _values(text)
    return {
        "queries": _one(v, "postgres_queries_total", operation="select", status="success"),
        "query_errors": _one(v, "postgres_queries_total", operation="select", status="error"),
        "histogram_count": _one(v, "postgres_query_duration_seconds_count", operation="select"),
        "pool_max": _one(v, "postgres_connections_max"),
        "pool_min": _one(v, "postgres_connections_min"),
    }


def _live_pids(text: str) -> set[str]:
    return {
        dict(labels)["pid"]
        for (name, labels), _ in _values(text).items()
        if name == "blockmon_health_status"
    }


def _scrapes_until(
    url: str, done: Any, pool: ThreadPoolExecutor, each_round: str | None = None
) -> dict[str, str]:
    """The latest scrape of each worker (pid -> body) once ``done(scrapes)``; bounded.
    ``each_round``: a URL requested from any workers before each round."""
    deadline = time.monotonic() + WAIT
    scrapes: dict[str, str] = {}
    while time.monotonic() < deadline:
        if each_round is not None:
            list(pool.map(lambda _: _get(each_round), range(4)))
        for response in pool.map(lambda _: _get(url), range(4)):
            assert response.status_code == 200, response.text
            scrapes[response.headers["x-worker-pid"]] = response.text
        if done(scrapes):
            return scrapes
        time.sleep(0.3)
    raise AssertionError(f"scrapes never satisfied the condition: {sorted(scrapes)}")


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            out, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
        return out
    return process.communicate()[0]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_every_worker_scrapes_the_same_totals(service: dict[str, Any], server: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = _start(service, server, port)
    pool = ThreadPoolExecutor(4)
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                if _get(f"{base}/monitoring/livez").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        # N known requests, spread until both workers have answered some; health is per
        # process: each worker's /readyz runs its own checks (and feeds its own gauges).
        sent, answered, ready = 0, set(), set()
        while len(answered) < 2 or len(ready) < 2:
            assert time.monotonic() < deadline, f"only {answered} answered {sent} requests"
            answered |= _spread(f"{base}/users", REQUESTS, pool)
            sent += REQUESTS
            ready |= _spread(f"{base}/monitoring/readyz", 8, pool)
        settings = Settings()
        pool_max = 2 * (settings.postgres.pool_size + settings.postgres.max_overflow)
        expected = {
            "queries": float(sent),
            "query_errors": 0.0,
            "histogram_count": float(sent),
            "pool_max": float(pool_max),
            "pool_min": float(2 * settings.postgres.pool_size),
        }
        metrics = f"{base}/monitoring/metrics"

        def agree(scrapes: dict[str, str]) -> bool:
            """Both workers scraped, every scrape with the expected totals (pool gauges
            take up to a second to be published)."""
            return len(scrapes) == 2 and all(_totals(t) == expected for t in scrapes.values())

        scrapes = _scrapes_until(metrics, agree, pool)
        for text in scrapes.values():
            assert _live_pids(text) == set(scrapes), text
            assert ":failed" not in text and ":untimed" not in text
        if server == "uvicorn" and SCRAPES:  # for the closing note
            first, second = sorted(scrapes)
            Path(SCRAPES).write_text(
                f"# uvicorn --workers 2, {sent} GET /users (one SELECT each)\n"
                f"# scrape answered by worker pid {first}\n{scrapes[first]}\n"
                f"# scrape answered by worker pid {second}\n{scrapes[second]}"
            )

        # A worker killed: its live series go, a new worker takes its place (uvicorn
        # restarts it, gunicorn too), the totals stay.
        dead = sorted(scrapes)[0]
        os.kill(int(dead), signal.SIGKILL)

        def replaced(scrapes: dict[str, str]) -> bool:
            return (
                len(scrapes) == 2
                and dead not in scrapes
                and all(
                    _live_pids(t) == set(scrapes)
                    and f'pid="{dead}"' not in t
                    and _totals(t) == expected
                    for t in scrapes.values()
                )
            )

        # /readyz: the new worker's health gauges appear at its first check.
        after = _scrapes_until(metrics, replaced, pool, each_round=f"{base}/monitoring/readyz")
        for response in pool.map(lambda _: _get(metrics), range(8)):  # repeated scrapes
            assert response.headers["x-worker-pid"] in after
            assert _totals(response.text) == expected, response.text
            assert f'pid="{dead}"' not in response.text
    finally:
        pool.shutdown()
        output = _stop(process)
    assert "Traceback" not in output, output


def _blockmon(tmp_path: Path, config: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yml"
    path.write_text(config)
    return subprocess.run(
        [str(BIN / "blockmon"), "serve", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=tmp_path,  # outside the repository: no alembic.ini found, start-up as a user's
    )


def test_a_multiprocess_dir_that_is_not_a_writable_directory_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = _blockmon(tmp_path, "{}\n", {"PROMETHEUS_MULTIPROC_DIR": str(missing)})
    assert result.returncode == 2
    # one line; a long value is shortened in it (nothing is echoed whole)
    line, end = result.stderr.split("\n", 1)
    assert end == ""
    assert line.startswith(
        "blockmon: error: monitoring.multiprocess_dir: must be a writable directory, got '"
    ), line
    assert str(missing) in line or "characters)" in line, line


def test_an_empty_variable_is_one_line_and_nothing_is_left_started(tmp_path: Path) -> None:
    """prometheus_client takes an empty PROMETHEUS_MULTIPROC_DIR as set (and would write
    to the working directory). The metrics Resource fails while the engine and the
    client start beside it: one line, and none of them left for the loop to close at
    exit (that printed an engine generator's traceback first)."""
    result = _blockmon(tmp_path, "{}\n", {"PROMETHEUS_MULTIPROC_DIR": ""})
    assert result.returncode == 2
    assert result.stderr == (
        "blockmon: error: monitoring.multiprocess_dir: PROMETHEUS_MULTIPROC_DIR is set but "
        "empty (prometheus_client would write its files to the working directory): set it "
        "to a directory, or unset it\n"
    )


def test_a_multiprocess_dir_without_the_variable_is_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    result = _blockmon(tmp_path, f"monitoring:\n  multiprocess_dir: {directory}\n", {})
    assert result.returncode == 2
    assert result.stderr == (
        f"blockmon: error: monitoring.multiprocess_dir: PROMETHEUS_MULTIPROC_DIR must be set "
        f"to {directory} before the process starts\n"
    )


_IMPORTED_FIRST = """
import asyncio, os, sys
import prometheus_client  # before the variable: its values stay in this process
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from blockmon.config.settings import MonitoringSettings
from blockmon.errors import ConfigError
from blockmon.metrics.multiprocess import check_mode
for settings in (MonitoringSettings(multiprocess_dir=sys.argv[1]), MonitoringSettings()):
    try:
        check_mode(settings)
    except ConfigError as error:
        print(error)
"""


def test_prometheus_client_imported_before_the_variable_is_one_line(tmp_path: Path) -> None:
    script = tmp_path / "first.py"
    script.write_text(_IMPORTED_FIRST)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.stdout == (
        "monitoring.multiprocess_dir: prometheus_client was imported before "
        "PROMETHEUS_MULTIPROC_DIR was set (set it before the process starts)\n"
    ), result.stderr


def test_the_variable_without_the_setting_is_one_line(tmp_path: Path) -> None:
    """The variable set for a container configured without load_mapping()."""
    script = tmp_path / "unset.py"
    script.write_text(
        "from blockmon.config.settings import MonitoringSettings\n"
        "from blockmon.metrics.multiprocess import check_mode\n"
        "check_mode(MonitoringSettings())\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "blockmon.errors.ConfigError: monitoring.multiprocess_dir: not set, but "
        f"prometheus_client writes to PROMETHEUS_MULTIPROC_DIR={tmp_path} "
        "(load the settings with load_mapping(), or set it)"
    )


_OTHER_WORKER = """
import asyncio

from blockmon import ApplicationContainer, Lifespan, load_mapping


async def main():
    container = ApplicationContainer()
    container.config.from_dict(load_mapping())
    async with Lifespan(container):
        checker = await container.monitoring.health()
        await checker.readiness()  # its health gauges, which must go with it
        statements = await container.postgres.statements()
        for _ in range(3):
            await statements.scalar("SELECT 1", operation="mp_other")
        try:
            await statements.scalar("SELECT 1 / 0", operation="mp_other")
        except Exception as error:
            print(type(error).__name__)


asyncio.run(main())
"""


@pytest.mark.slow
def test_blockmon_serve_shows_the_sum_over_processes(
    tmp_path: Path, blockmon_config: dict[str, Any]
) -> None:
    """Another process ran three statements and exited: `blockmon serve` (same directory)
    counts them, and shows no live series of the process that is gone."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(plain(blockmon_config)))
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "BLOCKMON_CONFIG": str(config),
        "PYTHONUNBUFFERED": "1",
    }
    other = tmp_path / "other.py"
    other.write_text(_OTHER_WORKER)
    ran = subprocess.run(
        [sys.executable, str(other)], env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0 and "DivisionByZeroError" in ran.stdout, ran.stderr
    left = MultiProcessCollector(None, str(directory)).collect()  # the files, read as they are
    assert {s.labels["pid"] for m in left if m.name == "blockmon_health_status" for s in m.samples}
    port = free_port()
    serve = subprocess.Popen(
        [str(BIN / "blockmon"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert serve.poll() is None and time.monotonic() < deadline, _stop(serve)
            try:
                assert _get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                text = _get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.HTTPError:
                time.sleep(0.3)
                continue
            if "postgres_connections_max" in text:  # the first copy of the live state
                break
            time.sleep(0.3)
        values = _values(text)
        assert _one(values, "postgres_queries_total", operation="mp_other", status="success") == 3
        assert _one(values, "postgres_queries_total", operation="mp_other", status="error") == 1
        assert _one(values, "postgres_query_duration_seconds_count", operation="mp_other") == 4
        assert _one(values, "postgres_errors_total", type="data") == 1
        assert _live_pids(text) == {str(serve.pid)}
        settings = Settings.model_validate(plain(blockmon_config))
        pool_max = settings.postgres.pool_size + settings.postgres.max_overflow
        assert _one(values, "postgres_connections_max") == pool_max  # serve's pool alone
    finally:
        output = _stop(serve)
    assert "Traceback" not in output, output


async def test_the_mirror_keeps_copying_after_a_failed_copy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A copy that fails (a full disk) is logged and tried again a second later."""

    third = asyncio.Event()

    class Flaky(Collector):
        calls = 0

        def collect(self) -> Iterator[GaugeMetricFamily]:
            self.calls += 1
            if self.calls == 1:
                raise OSError(28, "No space left on device")
            if self.calls == 3:
                third.set()
            yield GaugeMetricFamily("blockmon_test_flaky", "", value=self.calls)

    flaky = Flaky()
    caplog.set_level(logging.WARNING, logger="blockmon.metrics")
    task = asyncio.create_task(publish_every(Mirror([flaky]), interval=0.01))
    await asyncio.wait_for(third.wait(), WAIT)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    warned = [str(r.msg) for r in caplog.records if r.name == "blockmon.metrics"]
    assert len(warned) == 1 and "could not copy the live state" in warned[0], warned
    assert "No space left on device" in warned[0]
