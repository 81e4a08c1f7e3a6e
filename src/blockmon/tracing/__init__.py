"""OpenTelemetry spans for blockmon's statements, Redis commands and health checks (the otel extra)."""

from blockmon.tracing.resources import check_span, traced_client_resource, traced_engine_resource

__all__ = ["check_span", "traced_client_resource", "traced_engine_resource"]
