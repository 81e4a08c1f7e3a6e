"""Issue 16, part 5: headless Chromium (Debian's, driven by playwright) loads the status
page of a real ``blockmon serve`` with every check passing, then with its Redis stopped:
no console error, the failing check red with its reason, readable on a phone.

Screenshots go to the test's temp folder; with ``BLOCKMON_SCREENSHOTS=docs/img`` they
also replace the README's (docs/img/status-ok.png and status-failing.png).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from blockmon.testing.servers import RedisServer
from tests.monitoring.support import WAIT, merged, serving

CHROMIUM = "/usr/bin/chromium"  # Debian's package; scripts/test installs it when missing
GREEN, RED = "rgb(26, 127, 55)", "rgb(207, 34, 46)"


def _checks(page: Page) -> dict[str, dict[str, Any]]:
    """Each check on the page: its status class, badge colour and reason."""
    found: list[dict[str, Any]] = page.locator("section.check").evaluate_all(
        """sections => sections.map(s => ({
            component: s.dataset.component,
            status: s.querySelector('.badge').dataset.status,
            colour: getComputedStyle(s.querySelector('.badge')).backgroundColor,
            reason: (s.querySelector('.reason') || {}).textContent || null}))"""
    )
    return {check["component"]: check for check in found}


def _fits_a_phone(page: Page) -> bool:
    """At 390 px nothing scrolls sideways and no cell of the changes table is squeezed
    into a column (each gets a line of its own)."""
    page.set_viewport_size({"width": 390, "height": 844})
    wide: bool = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    narrowest: float = page.evaluate(
        "Math.min(300, ...[...document.querySelectorAll('table td')]"
        ".map(td => td.getBoundingClientRect().width))"
    )
    page.set_viewport_size({"width": 1100, "height": 520})
    return not wide and narrowest >= 300


def _shoot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    target = os.environ.get("BLOCKMON_SCREENSHOTS")
    if target:
        shutil.copyfile(shot, Path(target) / name)


@pytest.mark.slow
def test_status_page_in_chromium_passing_then_with_redis_down(
    blockmon_config: dict[str, Any], tmp_path: Path
) -> None:
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    with RedisServer() as redis_server:
        config = merged(
            blockmon_config, redis=redis_server.settings(), monitoring={"details": "always"}
        )
        logs: list[str] = []
        with serving(tmp_path, config, logs) as port, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 520})
                page.on("console", on_console)
                page.on("pageerror", lambda error: errors.append(str(error)))
                response = page.goto(f"http://127.0.0.1:{port}/")
                assert response is not None and response.status == 200
                checks = _checks(page)
                assert {"postgres", "redis"} <= set(checks), checks
                for check in checks.values():
                    assert (check["status"], check["colour"]) == ("pass", GREEN), check
                assert page.locator("h1 .badge").get_attribute("data-status") == "pass"
                assert page.locator(".bar").count() >= 2  # the two pools
                assert _fits_a_phone(page)
                _shoot(page, tmp_path, "status-ok.png")

                redis_server.stop()
                # The first check after the stop sees its open connection closed; the
                # next ones are refused, and the reason names the address.
                refused = f"{redis_server.port}. Connection refused"
                deadline = time.monotonic() + WAIT
                while refused not in (_checks(page)["redis"]["reason"] or ""):
                    assert time.monotonic() < deadline, _checks(page)
                    time.sleep(0.5)
                    response = page.reload()
                assert response is not None and response.status == 200  # a page, not a 503
                redis = _checks(page)["redis"]
                assert (redis["status"], redis["colour"]) == ("fail", RED), redis
                assert redis["reason"].startswith("ConnectionError: "), redis
                assert _checks(page)["postgres"]["status"] == "pass"
                assert page.locator("h1 .badge").get_attribute("data-status") == "fail"
                assert "redis" in page.locator("table").inner_text()  # the last change
                assert _fits_a_phone(page)
                _shoot(page, tmp_path, "status-failing.png")
            finally:
                browser.close()
    assert errors == []
