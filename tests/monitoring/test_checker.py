"""The checker's own machinery: user checks, timeouts, single flight, state-change logs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from blockmon.config.log import configure_logging
from blockmon.config.settings import LogSettings, MonitoringSettings, validate
from blockmon.errors import ConfigError
from blockmon.health import HealthChecker, Observation, Status
from blockmon.health.model import Report
from tests.monitoring.support import http, running


async def test_sync_and_async_user_checks_with_observations():
    checker = HealthChecker(timeout=2, cache_ttl=0)
    seen_threads: list[str] = []

    def sync_check() -> bool:
        seen_threads.append(threading.current_thread().name)
        return True

    async def async_check() -> list[Observation]:
        return [Observation("queue", 120, "messages", Status.WARN, "queue is long")]

    checker.register("disk", sync_check, critical=False)
    checker.register("queue", async_check, component_type="system")
    report = await checker.report()
    assert report.status == Status.WARN
    body = report.body(details=True)
    assert body["checks"]["disk:responseTime"][0]["status"] == "pass"
    assert body["checks"]["queue:queue"][0]["output"] == "queue is long"
    assert body["checks"]["queue:queue"][0]["componentType"] == "system"
    assert seen_threads and seen_threads[0] != threading.main_thread().name


async def test_non_critical_failure_warns_and_critical_failure_fails():
    checker = HealthChecker(timeout=2, cache_ttl=0)

    async def broken() -> None:
        raise RuntimeError("down: password=hunter22 at postgresql://u:pw@h/db")

    checker.register("extra", broken, critical=False)
    report = await checker.report()
    assert report.status == Status.WARN
    output = report.body(details=True)["checks"]["extra:responseTime"][0]["output"]
    assert "hunter22" not in output and ":pw@" not in output and "RuntimeError" in output
    checker.register("core", lambda: False)
    assert (await checker.report()).status == Status.FAIL
    assert (await checker.readiness()).results[0].component == "core"


async def test_a_hung_check_fails_at_its_timeout():
    checker = HealthChecker(timeout=5, cache_ttl=0)

    async def hang() -> None:
        await asyncio.sleep(3600)

    checker.register("hung", hang, timeout=0.2)
    started = time.monotonic()
    result = await checker.check("hung")
    assert time.monotonic() - started < 2
    assert result.status == Status.FAIL and "timed out after 0.2 s" in (result.output or "")
    await checker.stop()


async def test_single_flight_and_cache():
    checker = HealthChecker(timeout=2, cache_ttl=60)
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)

    checker.register("slow", slow)
    await asyncio.gather(*(checker.check("slow") for _ in range(200)))
    await checker.check("slow")  # cached
    assert calls == 1 == checker.runs("slow")
    await checker.check("slow", max_age=0)
    assert calls == 2


async def test_state_changes_are_logged_once_each(caplog):
    configure_logging(LogSettings(level="info"))
    caplog.set_level(logging.INFO, logger="blockmon.health")
    checker = HealthChecker(timeout=2, cache_ttl=0)
    healthy = True
    checker.register("flappy", lambda: healthy)
    for state in (True, False, False, False, True, True):
        healthy = state
        await checker.check("flappy")
    changes = [str(r.msg) for r in caplog.records if r.name == "blockmon.health"]
    assert len(changes) == 2
    assert "pass -> fail" in changes[0] and "check returned False" in changes[0]
    assert "fail -> pass" in changes[1]


async def test_slow_response_warns():
    checker = HealthChecker(timeout=2, cache_ttl=0, slow_response_warn=0.05)

    async def sluggish() -> None:
        await asyncio.sleep(0.1)

    checker.register("sluggish", sluggish)
    result = await checker.check("sluggish")
    assert result.status == Status.WARN and "slow response" in (result.output or "")


@pytest.mark.parametrize(
    ("name", "problem"), [("Bad Name", "must match"), ("dup", "already registered")]
)
def test_bad_check_names_are_refused(name, problem):
    checker = HealthChecker()
    checker.register("dup", lambda: True)
    with pytest.raises(ValueError, match=problem):
        checker.register(name, lambda: True)


def test_bad_check_timeout_is_refused():
    with pytest.raises(ValueError, match="timeout: must be > 0"):
        HealthChecker().register("x", lambda: True, timeout=0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"details": "token"}, "monitoring.details_token: is required when details is 'token'"),
        ({"details": "sometimes"}, "monitoring.details: must be one of"),
        ({"http_port": 70000}, "monitoring.http_port: must be <= 65535"),
        ({"cache_ttl": -1}, "monitoring.cache_ttl: must be >= 0"),
        ({"pool_saturation_warn": 2}, "monitoring.pool_saturation_warn: must be <= 1"),
        ({"slow_query_treshold": 1}, "monitoring.slow_query_treshold: unknown setting"),
    ],
)
def test_bad_monitoring_settings_name_the_setting(data, message):
    with pytest.raises(ConfigError) as info:
        validate(MonitoringSettings, data, "monitoring")
    assert str(info.value).startswith(message)


async def test_user_check_registered_on_the_container_checker(blockmon_config):
    async with running(blockmon_config) as container, http(container) as client:
        checker = await container.monitoring.health()
        checker.register("payments", lambda: Status.WARN, critical=False)
        body = (await client.get("/health")).json()
    assert body["status"] == "warn"


def test_report_without_results_passes():
    assert Report().status == Status.PASS


async def test_asking_from_code_as_the_docs_show(blockmon_container):
    """docs/monitoring.md, "Asking from code", on a started container."""
    checker = await blockmon_container.monitoring.health()
    checker.register("payments", lambda: False, critical=False, timeout=2.0)
    result = await checker.check("payments")
    assert result.status is Status.FAIL and result.response_time >= 0
    assert result.reason == "check returned False"
    assert await checker.check("payments") is result  # cached for cache_ttl
    assert await checker.check("payments", max_age=0) is not result  # run now
    report = await checker.report()
    assert {r.component for r in report.results} >= {"payments", "postgres", "redis"}
    assert report.status is Status.WARN  # only the non-critical check fails
    readiness = await checker.readiness()
    assert "payments" not in {r.component for r in readiness.results}
    assert readiness.status is Status.PASS
