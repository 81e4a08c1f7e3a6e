"""The FastAPI app: blockmon's Resources started by its lifespan, monitoring mounted."""

from __future__ import annotations

from blockmon import Lifespan, load_mapping, monitoring_app
from blockmon.fastapi import attach
from fastapi import FastAPI

from fastapi_service import endpoints
from fastapi_service.containers import Container


def create_app(container: Container | None = None) -> FastAPI:
    """The app around ``container`` (default: blockmon configured from config.yml and
    the environment)."""
    if container is None:
        container = Container()
        container.config.blockmon.from_dict(load_mapping())
    app = FastAPI(lifespan=Lifespan(container))
    app.container = container  # type: ignore[attr-defined]  # tests override on it
    attach(app, container)  # ReadSession routes also where the lifespan does not run
    app.include_router(endpoints.router)
    app.mount("/monitoring", monitoring_app(container.blockmon()))
    return app


app = create_app()
