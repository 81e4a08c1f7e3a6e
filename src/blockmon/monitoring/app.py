"""The monitoring HTTP app: /livez, /readyz, /health, /health/<group>, /metrics and the
status page at /.

A plain Starlette app, so it can be served alone (``blockmon serve``) or mounted into an
application: ``app.mount("/monitoring", container.monitoring.app())``. Details in health
bodies follow the configured policy; bodies never hold secrets (outputs are redacted).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from blockmon.config.settings import GROUP_NAME, MonitoringSettings
from blockmon.health.checker import READINESS, HealthChecker
from blockmon.health.model import MEDIA_TYPE, Report, Status, now
from blockmon.monitoring.page import page
from blockmon.monitoring.readiness import Readiness

PATHS = ("/livez", "/readyz", "/health", "/metrics")
PAGE = "/"


class _HealthJSON(JSONResponse):
    media_type = MEDIA_TYPE


def create_app(
    checker: HealthChecker,
    registry: CollectorRegistry,
    settings: MonitoringSettings,
    readiness: Readiness | None = None,
) -> Starlette:
    state = readiness or Readiness()
    token = settings.details_token.get_secret_value().encode() if settings.details_token else b""

    def details_allowed(request: Request) -> bool:
        if settings.details == "always":
            return True
        if settings.details == "never" or not token:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)

    def respond(report: Report, request: Request) -> Response:
        code = 503 if report.status == Status.FAIL else 200
        body = report.body(details=details_allowed(request))
        return _HealthJSON(body, status_code=code, headers={"Cache-Control": "no-store"})

    async def livez(request: Request) -> Response:
        """Alive: answers without touching any dependency (a failing liveness probe
        restarts the process, which a database outage must not cause)."""
        return _HealthJSON({"status": "pass"}, headers={"Cache-Control": "no-store"})

    async def readyz(request: Request) -> Response:
        """503 with the reason while starting, shutting down or (when asked) before the
        schema was at head; else the critical checks."""
        refusing = state.refusing
        if refusing is None and settings.ready_requires_schema_head:
            refusing = await state.schema_not_at_head(checker)
        if refusing is not None:
            body = {"status": str(Status.FAIL), "output": refusing}
            return _HealthJSON(body, status_code=503, headers={"Cache-Control": "no-store"})
        return respond(await checker.readiness(), request)

    async def health(request: Request) -> Response:
        return respond(await checker.report(), request)

    async def health_group(request: Request) -> Response:
        name = request.path_params["group"]
        if name == READINESS:  # /readyz's answer, its refusals (starting, shutting down) too
            return await readyz(request)
        try:
            report = await checker.group(name)
        except KeyError:
            shown = name if GROUP_NAME.match(name) else "(not a group name)"
            return PlainTextResponse(f"unknown health group: {shown}\n", status_code=404)
        return respond(report, request)

    async def status_page(request: Request) -> Response:
        """For a person: always 200 (a browser logs a 503 as an error; machines read
        /health), with check details under the same policy as /health."""
        report = await checker.report()
        allowed = details_allowed(request)
        html = page(report, checker.changes() if allowed else [], details=allowed, at=now())
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"Content-Type": content_type})

    app = Starlette(
        routes=[
            Route(PAGE, status_page),
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/health", health),
            Route("/metrics", metrics),
            *(Route(f"{path}/", _to_without_slash(path)) for path in PATHS),
            Route("/health/{group}", health_group),
        ]
    )
    app.router.redirect_slashes = False  # Starlette's would build the URL from the Host header
    return app


def _to_without_slash(path: str) -> Callable[[Request], Awaitable[Response]]:
    """``/health/`` -> ``../health``: relative, so right behind any mount or proxy, and
    never pointing at whatever host the request claimed to be for."""
    target = f"..{path}"

    async def redirect(request: Request) -> Response:
        query = request.url.query
        return RedirectResponse(f"{target}?{query}" if query else target, status_code=308)

    return redirect
