"""An application for ``blockmon up --serve --app tests.drain.app:create_app``: a request that
takes as long as asked, to be in flight when SIGTERM comes, and a count of those in flight."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def create_app(container: Any) -> Starlette:
    state = {"in_flight": 0}

    async def slow(request: Request) -> Response:
        state["in_flight"] += 1
        try:
            await asyncio.sleep(float(request.query_params["seconds"]))
        finally:
            state["in_flight"] -= 1
        return PlainTextResponse("done")

    async def in_flight(request: Request) -> Response:
        return JSONResponse(state)

    return Starlette(routes=[Route("/slow", slow), Route("/in-flight", in_flight)])
