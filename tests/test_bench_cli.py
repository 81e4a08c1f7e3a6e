"""bench/run.py rejects bad arguments with one line and exit code 2 (it never runs
in the test suite: timing belongs to the benchmark only)."""

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--window", "0"], "--window"),
        (["--rounds", "0"], "--rounds"),
        (["--bogus"], "--bogus"),
        (["--log", "/nonexistent-dir/bench.log"], "--log"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, named):
    done = subprocess.run(
        [sys.executable, str(RUN), *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert named in lines[0]
    assert "Traceback" not in done.stderr


def test_versions_line_names_a_missing_speed_extra(monkeypatch):
    """Without uvloop (the [speed] extra) the benchmark reports it instead of crashing."""
    import importlib.metadata
    import importlib.util

    monkeypatch.setattr(sys, "path", list(sys.path))  # bench/run.py adds bench/ to it
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "uvloop":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    line = bench_run.versions()
    assert "uvloop not installed" in line and "sqlalchemy 2." in line
