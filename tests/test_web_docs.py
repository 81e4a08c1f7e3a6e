"""docs/web.md's application and tests, saved as the files they name and run by pytest
with blockmon's plugin, as a user would: both ways of testing a FastAPI app, and the
per-test rollback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_documented_app_and_tests_pass(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "web.md").read_text()
    for block in re.findall(r"```python\n(# (\w+\.py)\n.*?)```", text, re.S):
        (tmp_path / block[1]).write_text(block[0])
    assert {p.name for p in tmp_path.iterdir()} == {"app.py", "test_app.py"}
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
         "--rootdir", str(tmp_path), "-c", os.devnull, "test_app.py"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout
