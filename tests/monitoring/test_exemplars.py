"""Exemplars: with tracing on, the duration histograms carry the trace id of a recent
observation, printed only in the OpenMetrics exposition (``Accept:
application/openmetrics-text``), never in Prometheus' text format."""

from __future__ import annotations

import re
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import text

from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def tracer() -> trace.Tracer:
    """A tracer of a provider of its own: the current span lives in the context, so the
    process-wide provider (set once, by tests/test_tracing.py) is left alone."""
    return TracerProvider().get_tracer("tests.exemplars")


async def scrape(container: ApplicationContainer, accept: str | None) -> httpx.Response:
    app = await container.monitoring.app()
    headers = {"Accept": accept} if accept else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as client:
        return await client.get("/metrics", headers=headers)


def exemplar_lines(body: str, family: str, trace_id: str) -> list[str]:
    return [
        line
        for line in body.splitlines()
        if line.startswith(f"{family}_bucket") and f'trace_id="{trace_id}"' in line
    ]


async def test_a_traced_request_is_the_exemplar_of_its_latency_buckets(
    blockmon_config: dict[str, Any],
) -> None:
    container = ApplicationContainer()
    container.config.from_dict({**blockmon_config, "tracing": {"enabled": True}})
    async with Lifespan(container):
        engine = await container.postgres.engine()
        cache = await container.redis.cache()
        with tracer().start_as_current_span("request") as span:
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
            await cache.set("exemplar", "x", ttl=60)
        trace_id = format(span.get_span_context().trace_id, "032x")
        open_metrics = await scrape(container, OPENMETRICS)
        plain = await scrape(container, None)
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    body = open_metrics.text
    assert body.rstrip().endswith("# EOF")
    for family in ("postgres_query_duration_seconds", "redis_command_duration_seconds"):
        [line] = exemplar_lines(body, family, trace_id)
        # bucket{labels} count # {trace_id="...",span_id="..."} value timestamp
        assert re.search(
            rf'# {{span_id="[0-9a-f]{{16}}",trace_id="{trace_id}"}} [0-9.e-]+ [0-9.]+$', line
        ), line
    assert plain.headers["content-type"].startswith("text/plain")
    assert trace_id not in plain.text and "# {" not in plain.text


async def test_without_tracing_no_exemplar(blockmon_config: dict[str, Any]) -> None:
    container = ApplicationContainer()
    container.config.from_dict(blockmon_config)
    async with Lifespan(container):
        engine = await container.postgres.engine()
        with tracer().start_as_current_span("request"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        body = (await scrape(container, OPENMETRICS)).text
    assert "trace_id=" not in body


def test_the_dashboards_latency_panels_show_exemplars() -> None:
    """A latency panel links each bucket's exemplar to its trace (Grafana's exemplar
    setting on the query; the data source names the trace_id label)."""
    from tests.deploy.rules import panels

    latency = [
        p for p in panels() if "duration_seconds_bucket" in p["targets"][0]["expr"]
        and p["title"] != "Health check duration"
    ]  # fmt: skip
    assert {p["title"] for p in latency} >= {"Statement latency", "p99 latency by command"}
    assert all(t.get("exemplar") is True for p in latency for t in p["targets"])
