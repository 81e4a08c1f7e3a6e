"""A health report as a terminal table (for ``blockmon health`` and ``blockmon up``)."""

from __future__ import annotations

from typing import Any

from blockmon.health.model import CheckResult, Observation, Report


def value_text(obs: Observation) -> str:
    """An observed value as a person reads it (also on the status page)."""
    value: Any = obs.value
    if value is None:
        return "(none)"
    if obs.measurement == "nodes" and isinstance(value, dict):  # a Redis Cluster's nodes
        return ", ".join(
            f"{address} {node['role']}{'' if node['up'] else ' DOWN'}"
            for address, node in value.items()
        )
    if isinstance(value, dict):
        return " ".join(f"{k} {'(none)' if v is None else v}" for k, v in value.items())
    if obs.unit == "bytes" and isinstance(value, int):
        return f"{value / 1048576:.1f} MiB"
    units = (None, "connections", "clients", "replicas")
    return f"{value}" if obs.unit in units else f"{value} {obs.unit}"


_PRODUCTS = {"postgres": "PostgreSQL", "redis": "Redis"}


def _part(component: str, obs: Observation) -> str:
    if obs.measurement == "version" and component in _PRODUCTS:
        return f"{_PRODUCTS[component]} {value_text(obs)}"
    return f"{obs.measurement} {value_text(obs)}"


def summary(result: CheckResult) -> str:
    """One line of observations ("PostgreSQL 16.4; connections ..."), then why the
    status is not pass."""
    parts = [_part(result.component, o) for o in result.observations]
    if result.reason:
        parts.append(result.reason)
    if result.pending:
        parts.append(f"pending: {result.pending}")
    return "; ".join(parts)


def table(report: Report) -> str:
    rows = [("COMPONENT", "STATUS", "TIME", "DETAILS")]
    for r in report.results:
        kind = r.component + ("" if r.critical else " (non-critical)")
        rows.append((kind, str(r.status), f"{r.response_time * 1000:.1f} ms", summary(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    lines.append(f"overall: {report.status}")
    return "\n".join(line.rstrip() for line in lines)
