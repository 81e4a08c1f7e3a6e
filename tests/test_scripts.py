"""The repository's scripts refuse what they cannot do with one line (the full runs of
scripts/test-isolated and scripts/stress-test are the suite itself, run by the lead/CI)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_test_isolated_says_it_needs_root() -> None:
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*as_user, "bash", str(ROOT / "scripts" / "test-isolated")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 2
    assert done.stderr == (
        "blockmon: scripts/test-isolated needs root (unshare -n -m); "
        "try: sudo bash scripts/test-isolated\n"
    )
    assert done.stdout == ""
