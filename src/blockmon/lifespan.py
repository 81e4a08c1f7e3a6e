"""Start and stop a container's Resources around an application's life.

``async with Lifespan(container):`` in a script, or ``Starlette(lifespan=Lifespan(container))``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from dependency_injector import containers


class Lifespan:
    """Validates the configuration, starts logging first, then every Resource; shuts
    them all down on exit, also when start-up fails halfway."""

    def __init__(self, container: containers.Container) -> None:
        self.container = container

    def __call__(self, app: Any = None) -> Lifespan:
        return self

    async def __aenter__(self) -> containers.Container:
        container: Any = self.container
        providers = container.providers
        if "settings" in providers:
            container.settings()
        try:
            if "logging" in providers:
                await container.logging.init()
            await container.init_resources()
        except BaseException:
            await container.shutdown_resources()
            raise
        return self.container

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        container: Any = self.container
        await container.shutdown_resources()
