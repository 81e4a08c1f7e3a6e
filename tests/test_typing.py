"""The types blockmon's calls return, as an application's ``mypy --strict`` sees them:
tests/typecheck/statements_use.py must check clean (its ``assert_type`` lines are the
claims: `Statements.fetch_one` of a SQL string is ``Record | None``, of a typed select a
typed ``Row``, ...) and statements_misuse.py must fail exactly on its ``# error:`` lines,
which shows the check can fail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = ROOT / "tests" / "typecheck"
MARK = re.compile(r"# error: (.+)$")


@pytest.mark.slow
def test_the_overloads_give_precise_types(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "tests/typecheck/statements_use.py",
            "tests/typecheck/statements_misuse.py",
        ],
        cwd=ROOT,  # pyproject.toml's [tool.mypy]: the pydantic plugin, as for src/
        capture_output=True,
        text=True,
        timeout=240,
    )
    reported = {}
    for line in done.stdout.splitlines():
        where, _, message = line.partition(": error: ")
        assert message, line
        reported[where] = message
    expected = {
        f"tests/typecheck/statements_misuse.py:{number}": mark.group(1)
        for number, text in enumerate(
            (SNIPPETS / "statements_misuse.py").read_text().splitlines(), start=1
        )
        if (mark := MARK.search(text))
    }
    assert len(expected) == 3
    assert sorted(reported) == sorted(expected), done.stdout + done.stderr
    for where, fragment in expected.items():
        assert fragment in reported[where], (where, reported[where])
    assert done.returncode == 1, done.stderr
