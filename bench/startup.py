"""Start-up cases: wall time of CLI commands in fresh processes, and import time."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Row

BLOCKMON = Path(sys.executable).with_name("blockmon")
IMPORT = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"


def wall(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    return time.perf_counter() - start, done.returncode, done.stderr.strip()


def median_wall(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    return statistics.median(wall(argv, env)[0] for _ in range(runs))


def has_command(name: str) -> bool:
    """Whether ``blockmon NAME`` exists (its --help succeeds)."""
    return wall([str(BLOCKMON), name, "--help"])[1] == 0


def rows(runs: int, database: str) -> list[Row]:
    out = [Row("start-up", "blockmon --help", median_wall([str(BLOCKMON), "--help"], runs), "s")]
    if has_command("health"):
        env = {**os.environ, "PGDATABASE": database, "BLOCKMON_LOG_LEVEL": "warning"}
        seconds, code, err = wall([str(BLOCKMON), "health"], env)
        times = [seconds] + [wall([str(BLOCKMON), "health"], env)[0] for _ in range(runs - 1)]
        note = "" if code == 0 else f"exit {code}: {err.splitlines()[-1] if err else ''}"
        out.append(Row("start-up", "blockmon health", statistics.median(times), "s", note))
    else:
        out.append(Row("start-up", "blockmon health", None, "s", "not available (no such command)"))
    for module in ("blockmon", "blockmon.containers"):
        argv = [sys.executable, "-c", IMPORT.format(module)]
        samples = [
            float(subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout)
            for _ in range(runs)
        ]
        out.append(Row("start-up", f"import {module}", statistics.median(samples), "s"))
    return out
