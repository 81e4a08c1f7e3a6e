"""The lint's report for people (text) and for CI (JSON)."""

from __future__ import annotations

import json
import os
from typing import Any

from blockmon.migrations.lint import LintReport
from blockmon.migrations.lint.measure import Measured, Measurement
from blockmon.migrations.lint.rules import MODE_NAMES, Finding


def as_dict(finding: Finding) -> dict[str, Any]:
    return {
        "revision": finding.revision,
        "path": finding.path,
        "rule": finding.rule,
        "statement": finding.statement,
        "lock": finding.lock,
        "rewrites": finding.rewrites,
        "detail": finding.detail,
        "why": finding.why,
        "recipe": finding.recipe,
        "accepted": finding.accepted,
    }


def as_json(report: LintReport, measured: Measurement | None = None) -> str:
    data: dict[str, Any] = {
        "revisions": [r.revision for r in report.linted],
        "findings": [as_dict(f) for f in report.open],
        "accepted": [as_dict(f) for f in report.findings if f.accepted is not None],
    }
    if measured is not None:
        data["measured"] = measured.as_dict(report)
    return json.dumps(data, indent=2)


def as_text(report: LintReport, measured: Measurement | None = None) -> str:
    lines: list[str] = []
    for revision in report.linted:
        found = [f for f in report.findings if f.revision == revision.revision]
        if not found:
            continue
        lines.append(f"revision {revision.revision} ({revision.doc}) {_shown(revision.path)}")
        for f in found:
            state = f" [accepted: {f.accepted}]" if f.accepted is not None else ""
            lines.append(f"  {f.rule}{state}: {f.statement}")
            if f.accepted is None:
                if f.detail:
                    lines.append(f"    detail: {f.detail}")
                lines.append(f"    lock: {f.lock}" + (", rewrites the table" if f.rewrites else ""))
                lines.append(f"    why: {f.why}")
                lines.append(f"    safe: {f.recipe}")
            if measured is not None:
                seen = measured.of(f)
                verdict = "agrees" if measured.agrees(f) else "DISAGREES"
                lines.append(f"    measured ({verdict}): {_seen(seen)}")
    for extra in measured.unexplained(report) if measured is not None else ():
        lines.append(f"revision {extra.revision}: rewrote with no finding: {extra.sql}")
        lines.append(f"    measured: {_seen(extra)}")
    hit = {f.revision for f in report.open}
    accepted = len(report.findings) - len(report.open)
    lines.append(
        f"blockmon: {len(report.open)} finding(s) in {len(hit)} of {len(report.linted)} "
        f"revision(s), {accepted} accepted"
    )
    return "\n".join(lines)


def _seen(seen: Measured | None) -> str:
    if seen is None:
        return "not run"
    if seen.locks is None:
        held = "outside a transaction"
    else:
        held = (
            "; ".join(
                f"{table}: {', '.join(sorted(MODE_NAMES[m] for m in modes))}"
                for table, modes in sorted(seen.locks.items())
            )
            or "no lock on an existing table"
        )
    rewrote = f", rewrote {', '.join(sorted(seen.rewritten))}" if seen.rewritten else ""
    return f"{held}{rewrote}, lock_timeout {seen.lock_timeout}"


def _shown(path: str) -> str:
    """The revision file relative to the working directory when it lies under it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
