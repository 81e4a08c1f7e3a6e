"""Issue 23, item 5: scrapes that survive the multi-process directory. A worker in
multi-process mode (a process of its own, the variable set before prometheus_client is
imported) writes real files; a truncated counter file, a foreign file and a gauge file
named for an impossible pid are added beside them. Every scrape answers, each bad file
is logged once and counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# The worker: its own files, then the bad ones, then three scrapes (printed, separated).
_WORKER = r"""
import os, shutil, sys
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from blockmon.config.log import configure_logging
from blockmon.config.settings import LogSettings
from blockmon.metrics.multiprocess import shared_registry

configure_logging(LogSettings(level="info", format="json"), stream=sys.stderr)
directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
Counter("jobs", "jobs done", registry=None).inc(7)
Histogram("job_seconds", "job time", registry=None).observe(0.2)
Gauge("workers_busy", "busy", registry=None, multiprocess_mode="livesum").set(3)
pid = os.getpid()
good = os.path.join(directory, f"counter_{pid}.db")
with open(good, "rb") as f:
    head = f.read(64)
with open(os.path.join(directory, "counter_1234567.db"), "wb") as f:
    f.write(head[:4] + head[4:20])  # says it holds more than it does
with open(os.path.join(directory, "notes.db"), "wb") as f:
    f.write(b"SQLite format 3\0" + os.urandom(200))
shutil.copy(
    os.path.join(directory, f"gauge_livesum_{pid}.db"),
    os.path.join(directory, "gauge_livesum_99999999999999.db"),
)
registry = shared_registry(directory, [])
for _ in range(3):
    sys.stdout.write(generate_latest(registry).decode() + "\n#--\n")
"""


def test_bad_files_are_skipped_logged_once_and_counted(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    scrapes = [s for s in done.stdout.split("#--\n") if s.strip()]
    assert len(scrapes) == 3
    for text in scrapes:
        values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert values[("jobs_total", ())] == 7.0  # the good files still count
        assert values[("job_seconds_count", ())] == 1.0
        assert values[("workers_busy", ())] == 3.0  # the absurd pid's copy is not added
        skipped = {
            labels: v
            for (name, labels), v in values.items()
            if name.startswith("blockmon_metrics_files_skipped")
        }
        assert skipped == {
            (("reason", "foreign"),): 1.0,
            (("reason", "pid"),): 1.0,
            (("reason", "unreadable"),): 1.0,
        }, skipped
    lines = [line for line in done.stderr.splitlines() if "skipping a file" in line]
    assert len(lines) == 3, done.stderr  # once per file, not per scrape
    for name in ("counter_1234567.db", "notes.db", "gauge_livesum_99999999999999.db"):
        assert sum(name in line for line in lines) == 1, lines
        assert (directory / name).exists()  # left where it was: not ours to delete
