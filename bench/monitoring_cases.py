"""Health and /metrics cases, measured in process through the ASGI app.

Requests go through the ASGI interface directly. The app is the container's own: ``await container.monitoring.app()`` (a Factory over
the running health checker and the container's registry), serving ``/readyz``
(answered from the cached health state) and ``/metrics``. Before the scrape every
family is populated: SQLAlchemy and fast-path statements, cache hits and misses, a
query error, and a health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, NamedTuple

from harness import Row, latencies
from run_state import RunState

from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan

CONCURRENT = 1000


class Answer(NamedTuple):
    status: int
    body: bytes


async def get(app: Any, path: str) -> Answer:
    """One GET through the ASGI interface: the app's own cost, no HTTP client library
    (httpx's ASGITransport alone adds about 0.6 ms per request here)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(sent[0]["status"], body)


async def _timed(app: Any, path: str, count: int) -> tuple[list[float], list[float], int]:
    """Wall and CPU time per request: on a loaded 2-core machine the wall p99 is mostly
    time the process spent descheduled, which the CPU time leaves out."""
    samples, cpu, failures = [], [], 0
    for _ in range(count):
        start, cpu_start = time.perf_counter(), time.thread_time()
        answer = await get(app, path)
        cpu.append(time.thread_time() - cpu_start)
        samples.append(time.perf_counter() - start)
        failures += answer.status >= 500
    return samples, cpu, failures


async def rows(run: RunState, probes: int) -> list[Row]:
    from prometheus_client.parser import text_string_to_metric_families
    from sqlalchemy import text

    app = ApplicationContainer()
    app.config.from_dict(run.config())
    async with Lifespan(app):
        # Populate every metric family before scraping.
        statements = await app.postgres.statements()
        cache = await app.redis.cache()
        engine = await app.postgres.engine()
        for i in range(20):
            await statements.scalar("SELECT 1")
            await statements.fetch_one("SELECT CAST(:i AS int)", {"i": i}, operation="bench")
            await cache.set(f"m{i}", b"x")
            await cache.get(f"m{i}")
            await cache.get(f"absent{i}")
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        with contextlib.suppress(Exception):  # an error sample for postgres_errors_total
            await statements.scalar("SELECT * FROM bench_no_such_table")
        asgi = await app.monitoring.app()
        await _timed(asgi, "/health", 1)
        await _timed(asgi, "/readyz", 50)
        probe, probe_cpu, probe_fail = await _timed(asgi, "/readyz", probes)
        scrape, scrape_cpu, scrape_fail = await _timed(asgi, "/metrics", max(20, probes // 20))
        exposition = (await get(asgi, "/metrics")).body.decode()
        start = time.perf_counter()
        answers = await asyncio.gather(
            *(get(asgi, "/readyz") for _ in range(CONCURRENT)), return_exceptions=True
        )
        burst = time.perf_counter() - start
    families = list(text_string_to_metric_families(exposition))
    populated = sum(1 for f in families if f.samples)
    p50, p99 = latencies(probe)
    s50, s99 = latencies(scrape)
    c50, c99 = latencies(probe_cpu)
    sc50, _ = latencies(scrape_cpu)
    errors = sum(1 for a in answers if isinstance(a, BaseException) or a.status >= 500)
    return [
        Row("monitoring", "cached /readyz probe p50", p50 * 1000, "ms", f"{probe_fail} failed"),
        Row("monitoring", "cached /readyz probe p99", p99 * 1000, "ms", f"{probe_fail} failed"),
        Row(
            "monitoring",
            "cached /readyz probe CPU p99",
            c99 * 1000,
            "ms",
            f"CPU p50 {c50 * 1e3:.3f} ms",
        ),
        Row(
            "monitoring",
            "/metrics scrape",
            s50 * 1000,
            "ms",
            f"p99 {s99 * 1000:.2f} ms, CPU p50 {sc50 * 1000:.2f} ms, {populated}/{len(families)} families populated,"
            f" {len(exposition):,} bytes, {scrape_fail} failed",
        ),
        Row("monitoring", f"{CONCURRENT} concurrent /readyz", burst, "s", f"{errors} errors"),
    ]
