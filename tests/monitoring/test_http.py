"""The monitoring endpoints over HTTP, against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from blockmon.health.checks.redis_probe import RedisProbe
from blockmon.health.model import MEDIA_TYPE
from tests.monitoring.support import at, black_hole, free_port, http, merged, running

SENTINEL = "s3ntinel-Pa55word-do-not-leak"


async def test_livez_readyz_health_follow_the_ietf_draft(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "always"})
    async with running(config) as container, http(container) as client:
        live = await client.get("/livez")
        assert live.status_code == 200 and live.json() == {"status": "pass"}
        assert live.headers["content-type"].startswith(MEDIA_TYPE)
        for path in ("/readyz", "/health"):
            response = await client.get(path)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith(MEDIA_TYPE)
            body = response.json()
            assert body["status"] == "pass"
            checks = body["checks"]
            for key in ("postgres:responseTime", "postgres:connections", "postgres:version"):
                entry = checks[key][0]
                assert entry["status"] == "pass" and entry["componentType"] == "datastore"
                assert "time" in entry and "observedValue" in entry
            assert checks["postgres:responseTime"][0]["observedUnit"] == "ms"
            assert checks["postgres:schema"][0]["status"] == "pass"  # at the packaged head
            assert set(checks["postgres:connections"][0]["observedValue"]) == {
                "used",
                "idle",
                "max",
                "waiting",
            }
            assert checks["redis:memory"][0]["observedValue"] > 0
            assert checks["redis:role"][0]["observedValue"] in {"master", "slave", "replica"}
            assert checks["redis:version"][0]["observedValue"].count(".") >= 1


async def test_details_policy_never_hides_checks(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "never"})
    async with running(config) as container, http(container) as client:
        body = (await client.get("/health")).json()
    assert body == {"status": "pass"}


async def test_details_with_bearer_token_and_no_secret_in_any_body(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "token", "details_token": SENTINEL})
    # The sentinel is also the password in a Redis URL that cannot connect: the check
    # fails (non-critical, so warn) and its error must not echo the password.
    config = merged(
        config,
        redis={"url": f"redis://user:{SENTINEL}@127.0.0.1:{free_port()}/0"},
        monitoring={"redis_critical": False},
    )
    async with running(config) as container, http(container) as client:
        anonymous = await client.get("/health")
        wrong = await client.get("/health", headers={"Authorization": "Bearer nope"})
        right = await client.get("/health", headers={"Authorization": f"Bearer {SENTINEL}"})
        metrics = await client.get("/metrics")
        ready = await client.get("/readyz", headers={"Authorization": f"Bearer {SENTINEL}"})
    assert set(anonymous.json()) == {"status"} and set(wrong.json()) == {"status"}
    body = right.json()
    assert body["status"] == "warn", body  # the non-critical redis check fails
    assert body["checks"]["redis:responseTime"][0]["status"] == "fail"
    assert body["checks"]["redis:responseTime"][0]["output"]
    assert right.status_code == 200 and ready.status_code == 200
    for response in (anonymous, wrong, right, metrics, ready):
        assert SENTINEL not in response.text


async def test_unreachable_dependencies_fail_with_503_within_the_timeout(blockmon_config):
    timeout = 1.0
    async with black_hole() as silent_port:
        config = merged(
            blockmon_config,
            postgres=at(free_port()),  # closed: refused at once
            redis=at(silent_port),  # accepts, never answers: the check must time out
            monitoring={"check_timeout": timeout, "details": "always"},
        )
        async with running(config) as container, http(container) as client:
            started = time.monotonic()
            response = await client.get("/readyz")
            elapsed = time.monotonic() - started
            live = await client.get("/livez")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["postgres:responseTime"][0]["status"] == "fail"
    assert "timed out" in body["checks"]["redis:responseTime"][0]["output"]
    assert elapsed < timeout + 1.0
    assert live.status_code == 200  # liveness never touches a database


async def test_500_concurrent_readyz_ping_each_component_once_per_cache_period(
    blockmon_config, monkeypatch
):
    ttl = 5.0
    config = merged(blockmon_config, monitoring={"cache_ttl": ttl})
    infos_sent = [0]
    original = RedisProbe.info

    async def counted(self):
        # The probe's own connection is not the instrumented client: count its INFOs here.
        infos_sent[0] += 1
        return await original(self)

    monkeypatch.setattr(RedisProbe, "info", counted)
    async with running(config) as container, http(container) as client:
        checker = await container.monitoring.health()
        registry = container.monitoring.registry()
        started = time.monotonic()
        responses = await asyncio.gather(*(client.get("/readyz") for _ in range(500)))
        periods = 1 + int((time.monotonic() - started) // ttl)
        pings, infos = _sent(registry, infos_sent[0])
        runs = checker.runs("postgres"), checker.runs("redis")
        # What one run sends: the ping, and the postgres:schema check's own statements.
        await checker.check("postgres", max_age=0)
        await checker.check("postgres:schema", max_age=0)
        await checker.check("redis", max_age=0)
        per_run = tuple(
            after - before
            for after, before in zip(_sent(registry, infos_sent[0]), (pings, infos), strict=True)
        )
    assert all(r.status_code == 200 for r in responses)
    assert 1 <= runs[0] <= periods and 1 <= runs[1] <= periods
    # Server-side counts of the statements and commands actually sent.
    assert per_run[0] >= 1 and per_run[1] == 1
    assert per_run[0] <= pings <= periods * per_run[0]
    assert 1 <= infos <= periods


def _sent(registry, infos: int) -> tuple[float, float]:
    """Health statements sent to PostgreSQL (from the metrics) and INFO sent by the Redis
    probe (``infos``, counted by the test)."""
    statements = registry.get_sample_value(
        "postgres_queries_total", {"operation": "health_check", "status": "success"}
    )
    return statements or 0.0, float(infos)


async def test_metrics_endpoint_speaks_openmetrics_when_asked(blockmon_config):
    async with running(blockmon_config) as container, http(container) as client:
        text = await client.get("/metrics")
        om = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert text.headers["content-type"].startswith("text/plain")
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")


async def test_mounted_into_an_application(blockmon_config):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    async with running(blockmon_config) as container:
        app = Starlette(routes=[Mount("/monitoring", await container.monitoring.app())])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/monitoring/readyz")
    assert response.status_code == 200 and json.loads(response.text)["status"] == "pass"
