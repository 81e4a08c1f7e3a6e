"""Health checks: the checker, its model, and the PostgreSQL and Redis checks."""

from __future__ import annotations

from blockmon.health.checker import CheckFunction, HealthChecker
from blockmon.health.checks.schema import SchemaProbe, alembic_schema_probe
from blockmon.health.model import MEDIA_TYPE, CheckResult, Observation, Report, Status

__all__ = [
    "MEDIA_TYPE",
    "CheckFunction",
    "CheckResult",
    "HealthChecker",
    "Observation",
    "Report",
    "SchemaProbe",
    "Status",
    "alembic_schema_probe",
]
