"""Issue 16, part 4: the status page at ``/`` follows the ``details`` policy of /health,
escapes and redacts whatever servers report, lists the last changes of state, and
leaves /health JSON for machines (real PostgreSQL and Redis)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from blockmon.health.checker import CHANGES_KEPT
from blockmon.health.model import MEDIA_TYPE, Observation, Status
from blockmon.monitoring.lazy import monitoring_app
from blockmon.monitoring.mount import combine
from tests.monitoring.support import http, merged, running

TOKEN = "t0ken-for-the-status-page-0123"
MARKER = "observed-marker-5150"
SENTINEL = "s3ntinel-Pa55word-do-not-leak"


def _marked() -> list[Observation]:
    return [Observation("marker", MARKER)]


async def test_page_without_token_shows_status_only_and_with_it_the_values(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "token", "details_token": TOKEN})
    async with running(config) as container, http(container) as client:
        (await container.monitoring.health()).register("marked", _marked)
        anonymous = await client.get("/")
        wrong = await client.get("/", headers={"Authorization": "Bearer not-the-token"})
        right = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    for response in (anonymous, wrong):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert 'data-status="pass"' in response.text  # the overall status
        assert "hidden by <code>monitoring.details</code>" in response.text
        for detail in (MARKER, "postgres", "redis", "ms ·", "Last changes"):
            assert detail not in response.text
    page = right.text
    assert MARKER in page
    assert '<meta http-equiv="refresh" content="5">' in page and "<script" not in page
    assert 'data-component="postgres"' in page and 'data-component="redis"' in page
    assert 'class="bar"' in page  # pool usage
    assert "Last changes" in page
    assert TOKEN not in page


async def test_details_never_hides_values_even_with_a_bearer(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "never"})
    async with running(config) as container, http(container) as client:
        (await container.monitoring.health()).register("marked", _marked)
        page = (await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})).text
    assert MARKER not in page and 'data-status="pass"' in page


async def test_values_from_servers_are_escaped_and_secrets_masked(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "always", "cache_ttl": 0})

    def hostile() -> list[Observation]:
        return [Observation("note", "<script>alert(1)</script>", status=Status.WARN)]

    def leaky() -> None:
        raise ValueError(f"cannot reach redis://app:{SENTINEL}@cache:6379/0 <img src=x>")

    async with running(config) as container, http(container) as client:
        checker = await container.monitoring.health()
        checker.register("hostile", hostile, critical=False)
        checker.register("leaky", leaky, critical=False)
        page = (await client.get("/")).text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x&gt;" in page
    assert SENTINEL not in page and "redis://app:***@cache:6379/0" in page
    assert 'data-status="warn"' in page  # failing non-critical checks: overall warn


async def test_last_changes_of_state_with_times_and_reasons(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "always", "cache_ttl": 0})
    up = {"now": False}

    def flaky() -> list[Observation]:
        if not up["now"]:
            raise ConnectionError("flaky is down")
        return [Observation("state", "fine")]

    async with running(config) as container, http(container) as client:
        checker = await container.monitoring.health()
        checker.register("flaky", flaky, critical=False)
        down = (await client.get("/")).text
        up["now"] = True
        again = (await client.get("/")).text
    changes = checker.changes()
    assert [(c.component, c.previous, c.status) for c in changes] == [
        ("flaky", Status.FAIL, Status.PASS),
        ("flaky", None, Status.FAIL),
    ]
    assert "ConnectionError: flaky is down" in down and "unknown → " in down
    table = again.split("Last changes", 1)[1]
    assert table.index('data-status="pass"') < table.index('data-status="fail"')  # newest first
    assert changes[0].at.strftime("%H:%M:%S") in table


async def test_the_checker_keeps_the_last_twenty_changes(blockmon_config):
    config = merged(blockmon_config, monitoring={"cache_ttl": 0})
    flips = {"count": 0}

    def flipping() -> bool:
        flips["count"] += 1
        return flips["count"] % 2 == 0

    async with running(config) as container:
        checker = await container.monitoring.health()
        checker.register("flipping", flipping, critical=False)
        for _ in range(CHANGES_KEPT + 5):
            await checker.check("flipping", max_age=0)
    changes = checker.changes()
    assert len(changes) == CHANGES_KEPT
    assert changes[0].status == Status.FAIL and changes[0].previous == Status.PASS  # 25th run


async def test_health_stays_json_for_a_browser_accept_header(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "always"})
    accept = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with running(config) as container, http(container) as client:
        health = await client.get("/health", headers=accept)
        page = await client.get("/", headers={"Accept": "application/json"})
    assert health.headers["content-type"].startswith(MEDIA_TYPE)
    assert health.json()["status"] == "pass"
    assert page.headers["content-type"].startswith("text/html")  # / is the page for all


async def test_mounted_page_links_stay_under_the_mount(blockmon_config):
    config = merged(blockmon_config, monitoring={"details": "always"})
    async with running(config) as container:
        app = Starlette(routes=[Mount("/monitoring", app=monitoring_app(container))])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            page = await client.get("/monitoring/")
            for link in ('href="health"', 'href="metrics"'):
                assert link in page.text
            health = await client.get(httpx.URL("http://svc/monitoring/").join("health"))
    assert page.status_code == 200 and health.json()["status"] == "pass"


async def test_an_application_served_beside_monitoring_keeps_its_own_root(blockmon_config):
    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the application's home")

    async with running(blockmon_config) as container:
        combined = combine(await container.monitoring.app(), Starlette(routes=[Route("/", home)]))
        transport = httpx.ASGITransport(app=combined)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            root = await client.get("/")
            health = await client.get("/health")
    assert root.text == "the application's home"
    assert health.headers["content-type"].startswith(MEDIA_TYPE)
