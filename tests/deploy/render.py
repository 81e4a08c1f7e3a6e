"""The dashboard's panels drawn with matplotlib from a real Prometheus (Grafana cannot
be installed here): one subplot per panel, its queries over the last minute."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import httpx
from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

from tests.deploy.rules import VARIABLES

COLUMNS = 4
WINDOW = 60  # seconds of data drawn


def _resolved(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


async def _series(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    end = time.time()
    params = {"query": _resolved(expr), "start": end - WINDOW, "end": end, "step": 1}
    body = (await client.get("/api/v1/query_range", params=params)).json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def render(client: httpx.AsyncClient, panels: list[dict[str, Any]], path: Path) -> int:
    """Draw ``panels`` into the PNG ``path``; the number of panels drawn."""
    rows = math.ceil(len(panels) / COLUMNS)
    figure = Figure(figsize=(COLUMNS * 5, rows * 2.8))
    axes = figure.subplots(rows, COLUMNS)
    flat = list(axes.flat)
    drawn = 0
    for axis, panel in zip(flat, panels, strict=False):
        axis.set_title(panel["title"], fontsize=10)
        axis.tick_params(labelsize=7)
        axis.set_xlabel("seconds", fontsize=7)
        for target in panel["targets"]:
            found = await _series(client, target["expr"])
            if panel["type"] == "heatmap":
                _heatmap(axis, found)
                continue
            for series in found:
                points = [(float(t), float(v)) for t, v in series["values"]]
                start = points[0][0]
                axis.plot(
                    [t - start for t, _ in points],
                    [v for _, v in points],
                    label=_legend(target["legendFormat"], series["metric"])[:40],
                )
        if axis.lines:
            axis.legend(fontsize=6, loc="upper left")
        drawn += 1
    for axis in flat[len(panels) :]:
        axis.axis("off")
    figure.suptitle(
        "blockmon (deploy/grafana/blockmon.json), drawn from the data of tests/deploy/test_prometheus.py"
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(path, dpi=70)
    return drawn


def _heatmap(axis: Any, found: list[dict[str, Any]]) -> None:
    """Per-bucket rates (cumulative `le` buckets made per-bucket) over time."""
    ordered = sorted(found, key=lambda s: float(s["metric"]["le"]))
    rows = [[float(v) for _, v in s["values"]] for s in ordered]
    width = min(len(r) for r in rows)
    cells = [
        [max(rows[i][j] - (rows[i - 1][j] if i else 0.0), 0.0) for j in range(width)]
        for i in range(len(rows))
    ]
    axis.imshow(cells, aspect="auto", origin="lower", cmap="viridis")
    axis.set_yticks(range(len(ordered)), [s["metric"]["le"] for s in ordered], fontsize=5)
