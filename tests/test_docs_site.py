"""The documentation site as a reader gets it: ``mkdocs build --strict`` from the
repository's mkdocs.yml into a temp folder, served over HTTP, and its home page and API
reference opened in headless Chromium (Debian's, driven by playwright): no console
error, no request leaving the site, and every internal link of both pages answers 200
with its #anchor present on the target page."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Request, sync_playwright

from blockmon.config.file import load_settings
from blockmon.config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's package; scripts/test installs it when missing
# Not --quiet: mkdocs counts the warnings that --strict turns into a failure through its
# log, and --quiet hides them from that count (the build then passes with a broken link).
MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]
EXAMPLE = ROOT / "examples" / "fastapi_service"
SNIPPET = re.compile(r'^ *--8<-- "([^"]+)"$', re.M)
PAGES = ["", "api/"]  # the home page and the API reference, relative to the site's root


class _Ids(HTMLParser):
    """Every id (and legacy ``<a name>``) a fragment can point at."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """The test reads statuses, not the server's access log."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built site, served on a free loopback port; yields its base URL."""
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [*MKDOCS, "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stderr
    assert (out / "index.html").is_file() and (out / "api" / "index.html").is_file()
    handler = functools.partial(_Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


@pytest.mark.slow
def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """What .ci/run relies on: a copy of the site's sources with one link to a page that
    does not exist does not build, and the error names the link."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "src").symlink_to(ROOT / "src")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[gone](no-such-page.md)\n")
    built = subprocess.run(
        [*MKDOCS, "-d", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr


@pytest.mark.slow
@pytest.mark.parametrize("page_path", PAGES, ids=["home", "api-reference"])
def test_a_page_in_chromium_has_no_console_error_and_no_broken_internal_link(
    site: str, page_path: str
) -> None:
    errors: list[str] = []
    outside: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def on_request(request: Request) -> None:
        if not request.url.startswith(site) and not request.url.startswith("data:"):
            outside.append(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", on_request)
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            response = page.goto(site + page_path, wait_until="networkidle")
            assert response is not None and response.status == 200
            title = page.locator("article h1").first.inner_text().rstrip("¶")
            assert title == ("blockmon" if page_path == "" else "API reference")
            hrefs: list[str] = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
        finally:
            browser.close()

    assert errors == []
    assert outside == []  # the site works offline: no font service, no CDN
    internal = sorted({h for h in hrefs if h.startswith(site)})
    assert len(internal) >= 20, internal  # the navigation alone links every page
    broken: list[str] = []
    ids_of: dict[str, set[str]] = {}
    for href in internal:
        target, fragment = urldefrag(href)
        if target not in ids_of:
            status, html = _fetch(target)
            if status != 200:
                broken.append(f"{href}: {status}")
                continue
            parser = _Ids()
            parser.feed(html)
            ids_of[target] = parser.ids
        if fragment and fragment not in ids_of[target]:
            broken.append(f"{href}: no #{fragment} on {urlsplit(target).path}")
    assert broken == []


def test_the_tutorial_shows_every_file_the_example_runs() -> None:
    """Issue #26: the site's tutorial includes each file of examples/fastapi_service (the
    files its tests run) in full, code in the order the README lists it."""
    included = SNIPPET.findall((ROOT / "docs" / "tutorial.md").read_text())
    files = sorted(
        str(p.relative_to(ROOT))
        for p in EXAMPLE.rglob("*")
        if p.is_file()
        and p.name != "README.md"
        and not any(part.startswith((".", "__pycache__")) for part in p.relative_to(EXAMPLE).parts)
    )
    whole = [name for name in included if ":" not in name]
    assert sorted(whole) == files
    readme = "examples/fastapi_service/README.md"
    parts = [name for name in included if name.startswith(f"{readme}:")]
    assert parts == [f"{readme}:write", f"{readme}:run", f"{readme}:serve"]
    assert included[0] == parts[0]  # the README's words first, then the files
    code = [n.rsplit("/", 1)[-1] for n in whole if n.endswith(".py") and "/tests/" not in n]
    order = re.findall(r"^  (\w+\.py) ", (EXAMPLE / "README.md").read_text(), re.M)
    assert len(order) == 7
    assert [n for n in code if n in order] == order


@pytest.mark.slow
def test_a_missing_included_file_fails_the_strict_build(tmp_path: Path) -> None:
    """check_paths: a page including a file that is gone does not build."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "config.yml", tmp_path / "config.yml")
    (tmp_path / "src").symlink_to(ROOT / "src")
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "fastapi_service")
    (tmp_path / "examples" / "fastapi_service" / "fastapi_service" / "checks.py").unlink()
    built = subprocess.run(
        [*MKDOCS, "-d", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode != 0
    assert "checks.py" in built.stderr


def test_the_settings_page_names_every_default_config_yml_changes() -> None:
    """docs/settings.md shows config.yml and says which of its values are not the
    built-in defaults (an empty environment: the file's own ${VAR:default} values)."""
    page = (ROOT / "docs" / "settings.md").read_text()
    assert '--8<-- "config.yml"' in page

    def leaves(data: dict[str, object], prefix: str = "") -> dict[str, object]:
        found: dict[str, object] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                found.update(leaves(value, f"{prefix}{key}."))
            else:
                found[f"{prefix}{key}"] = value
        return found

    in_file = leaves(load_settings(ROOT / "config.yml", environ={}).model_dump())
    built_in = leaves(Settings().model_dump())
    differ = {
        key: (in_file[key], built_in[key]) for key in in_file if in_file[key] != built_in[key]
    }
    assert differ == {
        "monitoring.details": ("always", "never"),
        "migrations.alerting_tables": (True, False),
    }
    assert "`monitoring.details: always`; the built-in default is `never`" in page
    assert "`migrations.alerting_tables: true`; the built-in default is `false`" in page
