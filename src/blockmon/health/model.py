"""What a health check reports, and how reports become IETF health+json bodies.

Statuses follow draft-inadarei-api-health-check: pass, warn, fail. Each check names a
component; its measurements become ``component:measurement`` entries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MEDIA_TYPE = "application/health+json"
TEXT_MAX = 1024  # characters of any text a result keeps (an output, a reason, a value)


def cap(text: str) -> str:
    """``text`` cut to `TEXT_MAX` characters, the cut marked: a check raising a 200 KB
    message must not put it in every body, page and log line."""
    if len(text) <= TEXT_MAX:
        return text
    marker = f"… [{len(text) - TEXT_MAX} more characters cut]"
    return text[: TEXT_MAX - len(marker)] + marker


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: list[Status]) -> Status:
    """The most severe of ``statuses`` (pass when there are none)."""
    return max(statuses, key=lambda s: s.rank, default=Status.PASS)


@dataclass(frozen=True)
class Observation:
    """One measured value of a component (``observedValue`` / ``observedUnit``)."""

    measurement: str
    value: Any
    unit: str | None = None
    status: Status = Status.PASS
    output: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one run of one check. ``output`` (why not pass) is already redacted."""

    component: str
    component_type: str
    critical: bool
    status: Status
    response_time: float
    checked_at: datetime
    output: str | None = None
    observations: tuple[Observation, ...] = ()
    # A change not reported yet (thresholds): "fail 1/3: <why>" or "pass 1/2".
    pending: str | None = None

    @property
    def reason(self) -> str | None:
        """Why the status is not pass: the output, or the outputs of warning observations."""
        if self.output:
            return self.output
        outputs = [o.output for o in self.observations if o.output and o.status != Status.PASS]
        return cap("; ".join(outputs)) or None

    def entries(self) -> dict[str, list[dict[str, Any]]]:
        """This result as IETF ``checks`` entries keyed ``component:measurement``; a
        check named ``component:measurement`` is that one entry."""
        time = self.checked_at.isoformat().replace("+00:00", "Z")
        if ":" in self.component:
            return {self.component: [self._single(time)]}
        head: dict[str, Any] = {
            "componentType": self.component_type,
            "observedValue": round(self.response_time * 1000, 3),
            "observedUnit": "ms",
            "status": str(self.status),
            "time": time,
        }
        if self.status != Status.PASS and self.reason:
            head["output"] = self.reason
        if self.pending:
            head["pending"] = self.pending
        out = {f"{self.component}:responseTime": [head]}
        for obs in self.observations:
            entry: dict[str, Any] = {
                "componentType": self.component_type,
                "observedValue": obs.value,
                "status": str(obs.status),
                "time": time,
            }
            if obs.unit:
                entry["observedUnit"] = obs.unit
            if obs.output and obs.status != Status.PASS:
                entry["output"] = obs.output
            out[f"{self.component}:{obs.measurement}"] = [entry]
        return out

    def _single(self, time: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "componentType": self.component_type,
            "observedValue": self.observations[0].value if self.observations else None,
            "status": str(self.status),
            "time": time,
        }
        if self.status != Status.PASS and self.reason:
            entry["output"] = self.reason
        if self.pending:
            entry["pending"] = self.pending
        return entry


@dataclass(frozen=True)
class Report:
    """Results of a set of checks; a failing non-critical check only warns."""

    results: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def status(self) -> Status:
        return worst([_effective(r) for r in self.results])

    def body(self, *, details: bool) -> dict[str, Any]:
        """The health+json body; without details, only the overall status."""
        body: dict[str, Any] = {"status": str(self.status)}
        if details:
            checks: dict[str, list[dict[str, Any]]] = {}
            for result in self.results:
                checks.update(result.entries())
            body["checks"] = checks
        return body


def _effective(result: CheckResult) -> Status:
    if result.status == Status.FAIL and not result.critical:
        return Status.WARN
    return result.status


def now() -> datetime:
    return datetime.now(UTC)
