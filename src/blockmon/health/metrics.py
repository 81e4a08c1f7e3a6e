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
            multiprocess_mode="liveall",  # health is per process: a pid label each
        )
        self.duration = Gauge(
            "blockmon_health_check_duration_seconds",
            "Duration of the component's last health check",
            ["component"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.replication_lag = Gauge(
            "postgres_replica_lag_seconds",
            "Replication lag of a read replica at its last health check (absent while unknown)",
            ["component"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._lag_series: set[str] = set()
        self._registry = registry

    def observe(self, result: CheckResult) -> None:
        for status in Status:
            self.status.labels(component=result.component, status=str(status)).set(
                1 if status == result.status else 0
            )
        self.duration.labels(component=result.component).set(result.response_time)
        for observation in result.observations:
            if observation.measurement != "replicationLag":
                continue
            if observation.value is not None:
                self.replication_lag.labels(component=result.component).set(observation.value)
                self._lag_series.add(result.component)
            elif result.component in self._lag_series:
                # An unreachable replica has no lag: a stale value would look healthy.
                self.replication_lag.remove(result.component)
                self._lag_series.discard(result.component)

    def unregister(self) -> None:
        """Leave the registry (which may outlive the checker) as it was."""
        self._registry.unregister(self.status)
        self._registry.unregister(self.duration)
        self._registry.unregister(self.replication_lag)
