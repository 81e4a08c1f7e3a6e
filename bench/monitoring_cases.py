"""Health and /metrics cases, measured in process through the ASGI app.

They run when the monitoring modules exist. The contract: ``blockmon.http`` has
``create_app(container)`` returning an ASGI app that serves ``/readyz`` (answered
from the cached health state) and ``/metrics``. Until then each row says why it
did not run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from typing import Any

from harness import Row, latencies
from scratch import Scratch

from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan

FACTORY = "create_app"
CONCURRENT = 1000


def missing() -> str | None:
    """Why these cases cannot run yet, or None when they can."""
    for module in ("blockmon.health", "blockmon.http"):
        if importlib.util.find_spec(module) is None:
            return f"not available ({module} does not exist yet)"
    http = importlib.import_module("blockmon.http")
    if not callable(getattr(http, FACTORY, None)):
        return f"not available (blockmon.http has no {FACTORY}(container))"
    return None


async def _timed(client: Any, path: str, count: int) -> tuple[list[float], int]:
    samples, failures = [], 0
    for _ in range(count):
        start = time.perf_counter()
        response = await client.get(path)
        samples.append(time.perf_counter() - start)
        failures += response.status_code >= 500
    return samples, failures


async def rows(scratch: Scratch, probes: int) -> list[Row]:
    reason = missing()
    if reason is not None:
        return [
            Row("monitoring", "cached /readyz probe p99", None, "ms", reason),
            Row("monitoring", "/metrics scrape", None, "ms", reason),
            Row("monitoring", f"{CONCURRENT} concurrent /readyz", None, "s", reason),
        ]
    import httpx

    http = importlib.import_module("blockmon.http")
    app = ApplicationContainer()
    app.config.from_dict(scratch.config())
    async with Lifespan(app):
        # Populate every metric family before scraping.
        statements = await app.postgres.statements()
        cache = await app.redis.cache()
        for i in range(20):
            await statements.scalar("SELECT 1")
            await cache.set(f"m{i}", b"x")
            await cache.get(f"m{i}")
        transport = httpx.ASGITransport(app=getattr(http, FACTORY)(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await _timed(client, "/readyz", 50)
            probe, probe_fail = await _timed(client, "/readyz", probes)
            scrape, scrape_fail = await _timed(client, "/metrics", max(20, probes // 20))
            start = time.perf_counter()
            answers = await asyncio.gather(
                *(client.get("/readyz") for _ in range(CONCURRENT)), return_exceptions=True
            )
            burst = time.perf_counter() - start
    p50, p99 = latencies(probe)
    s50, s99 = latencies(scrape)
    errors = sum(1 for a in answers if isinstance(a, BaseException) or a.status_code >= 500)
    return [
        Row("monitoring", "cached /readyz probe p50", p50 * 1000, "ms", f"{probe_fail} failed"),
        Row("monitoring", "cached /readyz probe p99", p99 * 1000, "ms", f"{probe_fail} failed"),
        Row(
            "monitoring",
            "/metrics scrape",
            s50 * 1000,
            "ms",
            f"p99 {s99 * 1000:.2f} ms, {scrape_fail} failed",
        ),
        Row("monitoring", f"{CONCURRENT} concurrent /readyz", burst, "s", f"{errors} errors"),
    ]
