"""``blockmon health`` exit codes and ``blockmon serve`` as a real uvicorn process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from blockmon.cli import main
from tests.monitoring.support import at, free_port, merged, plain

SENTINEL = "s3ntinel-Token-never-shown"


def write_config(tmp_path, config) -> str:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(plain(config)))
    return str(path)


def test_health_passes_with_exit_0(blockmon_config, tmp_path, capsys):
    path = write_config(tmp_path, blockmon_config)
    assert main(["health", "-c", path, "--log-level", "warning"]) == 0
    out = capsys.readouterr().out
    assert "postgres" in out and "redis" in out and "overall: pass" in out


def test_health_json_fails_with_exit_1(blockmon_config, tmp_path, capsys):
    config = merged(blockmon_config, postgres=at(free_port()))
    path = write_config(tmp_path, config)
    assert main(["health", "--json", "-c", path, "--log-level", "error"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert body["status"] == "fail"
    assert body["checks"]["postgres:responseTime"][0]["status"] == "fail"


def test_health_config_error_exits_2_with_one_line(blockmon_config, tmp_path, capsys):
    config = merged(blockmon_config, monitoring={"details": "token"})
    path = write_config(tmp_path, config)
    assert main(["health", "-c", path]) == 2
    err = capsys.readouterr().err
    assert err == "blockmon: error: monitoring.details_token: is required when details is 'token'\n"


def test_serve_bad_port_exits_2(capsys):
    assert main(["serve", "--port", "0"]) == 2
    assert "--port: must be between 1 and 65535, got 0" in capsys.readouterr().err
    assert main(["serve", "--port", "http"]) == 2
    assert "--port: must be an integer, got 'http'" in capsys.readouterr().err


def test_serve_port_in_use_is_one_line(blockmon_config, tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        path = write_config(tmp_path, blockmon_config)
        assert main(["serve", "-c", path, "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"blockmon: error: monitoring: cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("command", [["serve"], ["up", "--no-embedded", "--serve"]])
def test_serve_runs_uvicorn_until_sigint(blockmon_config, tmp_path, command):
    port = free_port()
    config = merged(
        blockmon_config,
        monitoring={"details": "token", "details_token": SENTINEL},
        log={"level": "warning"},
    )
    path = write_config(tmp_path, config)
    process = subprocess.Popen(
        [sys.executable, "-m", "blockmon", *command, "-c", path, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        while (line := process.stdout.readline()) and len(lines) < 10:
            lines.append(line)
            if "monitoring on" in line:  # printed once the socket listens
                break
        assert f"http://127.0.0.1:{port}/ " in line, lines  # the status page first
        assert f"http://127.0.0.1:{port}/readyz" in line, lines
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/livez").json() == {"status": "pass"}
            ready = client.get("/readyz")
            detailed = client.get("/health", headers={"Authorization": f"Bearer {SENTINEL}"})
            metrics = client.get("/metrics")
        assert ready.status_code == 200 and ready.json() == {"status": "pass"}
        assert detailed.json()["checks"]["postgres:responseTime"][0]["status"] == "pass"
        names = {f.name for f in text_string_to_metric_families(metrics.text)}
        assert {"postgres_queries", "redis_commands", "postgres_connections_waiting"} <= names
        for response in (ready, detailed, metrics):
            assert SENTINEL not in response.text
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert time.monotonic() - started < 15
        assert SENTINEL not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_up_reports_through_the_health_checker(blockmon_config, tmp_path, capsys):
    path = write_config(tmp_path, blockmon_config)
    assert main(["up", "--no-embedded", "-c", path, "--log-level", "warning"]) == 0
    out = capsys.readouterr().out
    assert "blockmon: postgres: pass (PostgreSQL 1" in out
    assert "blockmon: postgres:schema: pass (schema blockmon 0001)" in out
    assert "blockmon: redis: pass (Redis " in out
