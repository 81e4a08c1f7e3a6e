"""Issue 23, item 4: health that tolerates a blip. Thresholds against a real Redis cut
off by the fault proxy, named groups over HTTP, a hung synchronous check that leaves the
application's own threads alone, and texts capped where they are kept."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from blockmon.config.settings import MonitoringSettings, validate
from blockmon.errors import ConfigError
from blockmon.health import HealthChecker, Status
from blockmon.health.model import TEXT_MAX, Observation
from blockmon.testing.proxy import FaultProxy, Mode
from tests.monitoring.support import at, http, merged, running

WAIT = 30.0  # seconds: a generous bound on anything that should not block at all


async def test_a_blip_shorter_than_the_threshold_keeps_the_check_passing(
    blockmon_config, redis_server
):
    proxy = await FaultProxy("127.0.0.1", redis_server.port).start()
    config = merged(
        blockmon_config,
        redis=redis_server.settings()
        | at(proxy.port)
        | {"retries": 0, "socket_connect_timeout": 1},
        monitoring={
            "check_timeout": 2,
            "details": "always",
            "checks": {"redis": {"failure_threshold": 3, "success_threshold": 2}},
        },
    )
    try:
        async with running(config) as container, http(container) as client:
            checker = await container.monitoring.health()
            assert (await checker.check("redis", max_age=0)).status == Status.PASS
            proxy.mode = Mode.REJECT
            proxy.cut()
            for failures in (1, 2):
                result = await checker.check("redis", max_age=0)
                assert result.status == Status.PASS, result
                assert (result.pending or "").startswith(f"fail {failures}/3: ")
                assert "Error" in (result.pending or "")  # the failure is visible
            body = (await client.get("/readyz")).json()
            assert body["status"] == "pass"
            assert body["checks"]["redis:responseTime"][0]["pending"].startswith("fail 2/3")
            assert [c.status for c in checker.changes()] == []  # no flip was logged
            failed = await checker.check("redis", max_age=0)
            assert failed.status == Status.FAIL and failed.pending is None
            assert (await client.get("/readyz")).status_code == 503
            proxy.mode = Mode.PASS
            recovering = await checker.check("redis", max_age=0)
            assert recovering.status == Status.FAIL and recovering.pending == "pass 1/2"
            assert (await checker.check("redis", max_age=0)).status == Status.PASS
            changes = [(c.previous, c.status) for c in reversed(checker.changes())]
            assert changes == [(Status.PASS, Status.FAIL), (Status.FAIL, Status.PASS)]
    finally:
        await proxy.stop()


async def test_default_thresholds_flip_on_the_first_failure():
    checker = HealthChecker(timeout=2, cache_ttl=0)
    outcomes = iter([True, False, True])
    checker.register("flaky", lambda: next(outcomes))
    assert [(await checker.check("flaky")).status for _ in range(3)] == [
        Status.PASS,
        Status.FAIL,
        Status.PASS,
    ]
    await checker.stop()


async def test_thresholds_from_the_register_arguments_and_bad_ones():
    checker = HealthChecker(timeout=2, cache_ttl=0)
    outcomes = iter([True, False, False, True])
    checker.register("flaky", lambda: next(outcomes), failure_threshold=2)
    statuses = [(await checker.check("flaky")).status for _ in range(4)]
    assert statuses == [Status.PASS, Status.PASS, Status.FAIL, Status.PASS]
    with pytest.raises(ValueError, match=r"^failure_threshold: must be >= 1, got 0$"):
        checker.register("other", lambda: True, failure_threshold=0)
    with pytest.raises(ValueError, match=r"^groups: must match"):
        checker.register("other", lambda: True, groups=["Bad Group"])
    await checker.stop()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"failure_threshold": 0}, "monitoring.failure_threshold: must be >= 1, got 0"),
        (
            {"checks": {"redis": {"sucess_threshold": 2}}},
            "monitoring.checks.redis.sucess_threshold: unknown setting",
        ),
        ({"groups": {"Bad": ["redis"]}}, "monitoring.groups: 'Bad' is not a group name"),
        ({"check_threads": 0}, "monitoring.check_threads: must be >= 1, got 0"),
    ],
)
def test_bad_threshold_and_group_settings_are_one_line(section, message):
    with pytest.raises(ConfigError) as caught:
        validate(MonitoringSettings, section, "monitoring")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


async def test_named_groups_are_served_and_an_unknown_one_is_404(blockmon_config):
    config = merged(
        blockmon_config,
        monitoring={"details": "always", "groups": {"storage": ["postgres", "disk"]}},
    )
    async with running(config) as container, http(container) as client:
        checker = await container.monitoring.health()
        checker.register("disk", lambda: True, critical=False)
        checker.register("payments", lambda: True, critical=False, groups=["billing", "readiness"])
        checker.register("jobs", lambda: True, critical=False, groups=["liveness"])

        keys: dict[str, set[str]] = {}
        for path in (
            "/health/storage",
            "/health/billing",
            "/health/readiness",
            "/health/liveness",
            "/readyz",
        ):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
            keys[path] = {k.partition(":")[0] for k in response.json()["checks"]}
        assert keys["/health/storage"] == {"postgres", "disk"}
        assert keys["/health/billing"] == {"payments"}
        assert keys["/health/readiness"] == keys["/readyz"] == {"postgres", "redis", "payments"}
        assert keys["/health/liveness"] == {"jobs"}
        missing = await client.get("/health/nope")
        assert missing.status_code == 404
        assert missing.text == "unknown health group: nope\n"
        odd = await client.get("/health/%3Cscript%3E")
        assert odd.status_code == 404 and "<" not in odd.text


async def test_a_failing_check_in_a_group_fails_that_group_only(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "always"})
    async with running(config) as container, http(container) as client:
        checker = await container.monitoring.health()
        checker.register("queue", lambda: False, groups=["workers"])
        checker.register("mail", lambda: True, groups=["notify"])
        assert (await client.get("/health/workers")).status_code == 503
        assert (await client.get("/health/notify")).status_code == 200


async def test_a_hung_sync_check_leaves_to_thread_and_other_checks_alone():
    """On main each timed-out run of the hung check kept a thread of the loop's default
    executor; after a few runs the application's own to_thread and every other sync
    check waited behind them."""
    release = threading.Event()
    before = set(threading.enumerate())  # other tests' hung calls may still hold theirs
    checker = HealthChecker(timeout=0.2, cache_ttl=0)
    checker.register("hung", lambda: release.wait(3600), critical=False)
    checker.register("fine", lambda: True)
    try:
        for _ in range(12):  # more runs than the default executor has threads here
            hung = await checker.check("hung")
            assert hung.status == Status.FAIL
        assert "timed out" in (hung.output or "") or "has not returned" in (hung.output or "")
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), timeout=WAIT) == 42
        fine = await asyncio.wait_for(checker.check("fine"), timeout=WAIT)
        assert fine.status == Status.PASS, fine
        started = [t for t in set(threading.enumerate()) - before if "health" in t.name]
        assert len(started) <= 2, started  # the hung call's thread, and one for the others
    finally:
        release.set()
        await checker.stop()


async def test_sync_checks_start_again_after_stop():
    checker = HealthChecker(timeout=2, cache_ttl=0)
    checker.register("disk", lambda: True)
    assert (await checker.check("disk")).status == Status.PASS
    await checker.stop()
    assert (await checker.check("disk")).status == Status.PASS
    await checker.stop()


async def test_a_200_kb_message_is_capped_in_health_and_on_the_status_page(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "always"})
    async with running(config) as container, http(container) as client:
        checker = await container.monitoring.health()

        def huge() -> None:
            raise RuntimeError("x" * 200_000)

        checker.register("huge", huge, critical=False)
        health = await client.get("/health")
        page = await client.get("/")
        result = checker.last("huge")
    assert result is not None and result.output is not None
    assert len(result.output) == TEXT_MAX and result.output.endswith("more characters cut]")
    assert len(health.content) < 16_000, len(health.content)
    assert len(page.content) < 32_000, len(page.content)
    assert "more characters cut]" in health.text and "more characters cut]" in page.text
    (change,) = [c for c in checker.changes() if c.component == "huge"]
    assert change.reason is not None and len(change.reason) == TEXT_MAX


async def test_an_observations_value_and_output_are_capped_too():
    checker = HealthChecker(timeout=2, cache_ttl=0)
    checker.register(
        "queue",
        lambda: [Observation("depth", "v" * 200_000, status=Status.WARN, output="o" * 200_000)],
        critical=False,
    )
    try:
        result = await checker.check("queue")
        (kept,) = result.observations
        assert result.status == Status.WARN
        assert len(kept.value) == TEXT_MAX and kept.value.endswith("more characters cut]")
        assert len(kept.output or "") == TEXT_MAX
        assert result.reason is not None and len(result.reason) <= TEXT_MAX
    finally:
        await checker.stop()


def test_a_bad_group_in_the_file_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("monitoring:\n  groups:\n    Payments: [postgres]\n")
    done = subprocess.run(
        [sys.executable, "-m", "blockmon", "health", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "monitoring.groups: 'Payments' is not a group name" in lines[0]
