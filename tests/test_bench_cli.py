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
