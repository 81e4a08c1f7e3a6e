"""The doctor's output: findings as lines (the one that breaks first on top) or JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from blockmon.cli.doctor.facts import Facts
from blockmon.cli.doctor.rules import Finding, exit_code

_VERDICT = {0: "fine", 1: "warnings", 2: "will break"}


def text(facts: Facts, findings: list[Finding]) -> str:
    d = facts.deployment
    lines = [
        f"deployment: {d.workers} workers ({d.workers_from}) x {d.replicas} replicas = "
        f"{d.processes} processes",
    ]
    for finding in findings:
        lines.append(f"{finding.level.upper():5} {finding.rule}: {finding.message}")
        lines.append(f"      why: {finding.why}")
    lines += [f"note: {note}" for note in facts.notes]
    code = exit_code(findings)
    first = next((f for f in findings if f.level != "info"), None)
    summary = f"verdict: {_VERDICT[code]} (exit {code})"
    if first is not None:
        summary += f"; breaks first: {first.rule}"
    lines.append(summary)
    return "\n".join(lines)


def document(facts: Facts, findings: list[Finding]) -> dict[str, Any]:
    code = exit_code(findings)
    return {
        "status": _VERDICT[code],
        "exit": code,
        "deployment": {**asdict(facts.deployment), "processes": facts.deployment.processes},
        "postgres": asdict(facts.postgres) if facts.postgres else None,
        "pgbouncer": asdict(facts.bouncer) if facts.bouncer else None,
        "redis": asdict(facts.redis) if facts.redis else None,
        "findings": [asdict(f) for f in findings],
        "notes": facts.notes,
    }
