"""Issue 12, "Found" 4: SIGINT or SIGTERM at any moment of ``blockmon up`` (finding the
servers, starting embedded ones, creating the database, migrating, reporting, serving)
and of ``blockmon serve`` stops everything that was started, embedded servers
included, and exits 0. Each point of start-up is reached by waiting for what the
command prints there, then the signal is sent."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.monitoring.support import free_port, merged, plain

WAIT = 120.0  # an embedded PostgreSQL's first start runs initdb
BLOCKMON = str(Path(sys.executable).with_name("blockmon"))
UNREACHABLE = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/app",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}

UP_POINTS = [
    "PostgreSQL is not reachable",  # then the embedded PostgreSQL starts
    "Redis is not reachable",  # then the embedded Redis starts
    "created database",
    '"postgres connected"',  # the container's Resources are starting
    "Running upgrade",  # migrating
    "schema: at head",  # reporting health
    "monitoring on",  # serving
]


def _embedded_left(home: Path) -> list[str]:
    """PostgreSQL or Redis processes still running out of ``home`` (their cwd)."""
    left = []
    for proc in psutil.process_iter(["name", "cwd", "pid"]):
        cwd = proc.info["cwd"] or ""
        if proc.info["name"] in ("postgres", "redis-server") and cwd.startswith(str(home)):
            left.append(f"{proc.info['pid']} {proc.info['name']}")
    return left


def _run_until(
    argv: list[str], cwd: Path, env: dict[str, str], marker: str, sig: signal.Signals
) -> tuple[int, list[str]]:
    """Start ``argv``, send ``sig`` as soon as a line containing ``marker`` appears."""
    lines: queue.Queue[str | None] = queue.Queue()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def pump(stream: Any) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    readers = [
        threading.Thread(target=pump, args=(s,), daemon=True)
        for s in (process.stdout, process.stderr)
    ]
    for reader in readers:
        reader.start()
    seen: list[str] = []
    try:
        deadline, ended = time.monotonic() + WAIT, 0
        while ended < 2 and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                ended += 1
                continue
            seen.append(line)
            if marker in line:
                process.send_signal(sig)
                break
        else:
            pytest.fail(f"never printed {marker!r}: {''.join(seen)}")
        code = process.wait(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        for reader in readers:
            reader.join(WAIT)
    while not lines.empty():
        if (line := lines.get()) is not None:
            seen.append(line)
    return code, seen


def _environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLOCKMON_", "MIGRATIONS_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(BLOCKMON_LOG_LEVEL="info", **extra)
    return env


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("marker", UP_POINTS)
def test_up_stops_everything_it_started(marker: str, sig: signal.Signals, tmp_path: Path) -> None:
    # the main job's chain: the alerting tables (as the repository's config.yml asks)
    (tmp_path / "config.yml").write_text("migrations:\n  alerting_tables: true\n")
    argv = [BLOCKMON, "up", "--serve", "--port", str(free_port())]
    try:
        code, seen = _run_until(argv, tmp_path, _environ(**UNREACHABLE), marker, sig)
        assert code == 0, "".join(seen)
        assert "Traceback" not in "".join(seen)
        assert _embedded_left(tmp_path) == []
    finally:
        for pid in _embedded_left(tmp_path):  # a failed run must not leave servers behind
            psutil.Process(int(pid.split()[0])).kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("marker", ['"postgres connected"', '"redis connected"', "monitoring on"])
def test_serve_exits_0(
    marker: str, sig: signal.Signals, blockmon_config: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "config.yml"
    # a short health interval: the checks (and so the connect events) come at once
    config = merged(blockmon_config, log={"level": "info"}, monitoring={"health_interval": 0.5})
    path.write_text(yaml.safe_dump(plain(config)))
    argv = [BLOCKMON, "serve", "-c", str(path), "--port", str(free_port())]
    code, seen = _run_until(argv, tmp_path, _environ(), marker, sig)
    assert code == 0, "".join(seen)
    assert "Traceback" not in "".join(seen)
