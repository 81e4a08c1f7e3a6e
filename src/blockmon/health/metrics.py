"""Per-component health as metrics: a listener of the health checker, fed after every run."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from blockmon.health.model import CheckResult, Status


class HealthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.status = Gauge(
            "blockmon_health_status",
            "1 for the component's current status (pass, warn or fail), 0 for the others",
            ["component", "status"],
            registry=registry,
        )
        self.duration = Gauge(
            "blockmon_health_check_duration_seconds",
            "Duration of the component's last health check",
            ["component"],
            registry=registry,
        )

        self._registry = registry

    def observe(self, result: CheckResult) -> None:
        for status in Status:
            self.status.labels(component=result.component, status=str(status)).set(
                1 if status == result.status else 0
            )
        self.duration.labels(component=result.component).set(result.response_time)

    def unregister(self) -> None:
        """Leave the registry (which may outlive the checker) as it was."""
        self._registry.unregister(self.status)
        self._registry.unregister(self.duration)
