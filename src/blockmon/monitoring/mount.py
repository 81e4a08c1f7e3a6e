"""``--app MODULE:FACTORY``: an application served next to the monitoring endpoints.

FACTORY is called with the running ApplicationContainer (its Resources already started by
the command's Lifespan) and returns an ASGI app, directly or as an awaitable. The app is
mounted at ``/`` behind the monitoring routes, so /livez, /readyz, /health and /metrics
keep their paths and everything else, ``/`` included, reaches the application.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from blockmon.errors import UsageError
from blockmon.monitoring.app import PAGE


@dataclass(frozen=True)
class AppFactory:
    """``spec`` as given (for messages) and the factory it names."""

    spec: str
    factory: Callable[[Any], Any]

    async def build(self, container: Any) -> ASGIApp:
        """Call the factory with ``container``, awaiting it when it is async."""
        app = self.factory(container)
        if inspect.isawaitable(app):
            app = await app
        if not callable(app):
            raise UsageError(f"--app: {self.spec} returned {type(app).__name__}, not an ASGI app")
        built: ASGIApp = app
        return built


def load_factory(spec: str) -> AppFactory:
    """The callable named by ``MODULE:FACTORY``; argparse reports errors against --app.

    The current directory is importable (as with uvicorn), so a project's own module
    works without installing it.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise argparse.ArgumentTypeError(f"expected MODULE:FACTORY, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise argparse.ArgumentTypeError(
                f"cannot import module {module_name!r} (is it on PYTHONPATH?)"
            ) from None
        raise argparse.ArgumentTypeError(_import_failed(module_name, error)) from None
    except Exception as error:
        raise argparse.ArgumentTypeError(_import_failed(module_name, error)) from None
    factory = module
    for part in attribute.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise argparse.ArgumentTypeError(
                f"module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(factory):
        raise argparse.ArgumentTypeError(
            f"{spec} is a {type(factory).__name__}, not a callable factory"
        )
    return AppFactory(spec, factory)


def _import_failed(module_name: str, error: Exception) -> str:
    from blockmon.config.secrets import redact

    return redact(f"importing {module_name!r} failed: {type(error).__name__}: {error}")


def combine(monitoring: Starlette, app: ASGIApp) -> Starlette:
    """The monitoring routes first, then the application at ``/`` for every other path
    (its own ``/`` too: the status page gives way to it)."""
    routes = [r for r in monitoring.routes if getattr(r, "path", None) != PAGE]
    return Starlette(routes=[*routes, Mount("/", app=app)])
