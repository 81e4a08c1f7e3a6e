"""The monitoring endpoints as an ASGI app you can mount while building your application,
before any ``await``: it finds the container's monitoring app once the Lifespan has
started the Resources, and answers 503 with the reason until then."""

from __future__ import annotations

from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

NOT_STARTED = (
    "blockmon: not started: the container's Resources are not running "
    "(pass Lifespan(container) as the application's lifespan)\n"
)


class MonitoringApp:
    """``/livez /readyz /health /metrics`` of ``container`` (an ApplicationContainer or
    a MonitoringContainer); rebuilt whenever the Lifespan restarted the Resources."""

    def __init__(self, container: Any) -> None:
        providers = container.providers
        self._monitoring = container.monitoring if "monitoring" in providers else container
        self._built: tuple[Any, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served on its own: nothing to start here
            await _lifespan(receive, send)
            return
        app = await self._app()
        if app is None:
            response = PlainTextResponse(
                NOT_STARTED, status_code=503, headers={"Cache-Control": "no-store"}
            )
            await response(scope, receive, send)
            return
        path, root = scope.get("path", ""), scope.get("root_path", "")
        inside = path[len(root) :] if root and path.startswith(root) else path
        if len(inside) > 1 and inside.endswith("/"):  # Litestar mounts add a trailing slash
            scope = {**scope, "path": path.rstrip("/")}  # (but "/" is the status page)
        await app(scope, receive, send)

    async def _app(self) -> ASGIApp | None:
        health = self._monitoring.health
        if not health.initialized:
            self._built = None
            return None
        checker = await health()
        if self._built is None or self._built[0] is not checker:
            self._built = (checker, await self._monitoring.app())
        return self._built[1]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def monitoring_app(container: Any) -> MonitoringApp:
    """The monitoring endpoints of ``container``, mountable at once:
    ``app.mount("/monitoring", monitoring_app(container))``."""
    return MonitoringApp(container)
