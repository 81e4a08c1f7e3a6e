"""docs/testing.md's example, run as a user would: the Python block saved as a test file
and run by pytest with the blockmon.testing plugins (throwaway servers from the launcher)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_documented_example_passes(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "testing.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    (tmp_path / "test_example.py").write_text(block)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "blockmon.testing", "-p", "blockmon.testing.deployments",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
         "--rootdir", str(tmp_path), "-c", os.devnull, "test_example.py"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
