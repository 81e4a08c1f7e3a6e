"""The drain's and readiness's settings: a bad value is one line naming the setting, exit
2, no traceback, before anything is started (``blockmon serve``, ``blockmon up``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BLOCKMON = str(Path(sys.executable).with_name("blockmon"))


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("shutdown_delay: -1", "monitoring.shutdown_delay: must be >= 0, got -1"),
        ("shutdown_delay: soon", "monitoring.shutdown_delay: must be a number, got 'soon'"),
        ("shutdown_delay: 3601", "monitoring.shutdown_delay: must be <= 3600, got 3601"),
        ("shutdown_timeout: 0", "monitoring.shutdown_timeout: must be >= 1, got 0"),
        ("shutdown_timeout: 1.5", "monitoring.shutdown_timeout: must be an integer, got 1.5"),
        (
            "ready_requires_schema_head: maybe",
            "monitoring.ready_requires_schema_head: must be true or false, got 'maybe'",
        ),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["up", "--serve"]])
def test_a_bad_value_is_one_line(tmp_path: Path, value: str, line: str, command: list[str]) -> None:
    path = tmp_path / "config.yml"
    path.write_text(f"monitoring:\n  {value}\n")
    done = subprocess.run(
        [BLOCKMON, *command, "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"blockmon: error: {line}\n")
