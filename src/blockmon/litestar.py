"""blockmon in a Litestar app as one plugin: ``Litestar(plugins=[BlockmonPlugin(container)])``
starts and stops the container with the app and gives every handler a ``session:
WriteSession`` (committed on success, rolled back on an exception, closed after) and a
``read_session: ReadSession`` (a replica when ``postgres.replicas`` names some, else the
primary)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol
from sqlalchemy.ext.asyncio import AsyncSession

from blockmon.errors import UsageError
from blockmon.lifespan import Lifespan, blockmon_container

__all__ = ["BlockmonPlugin", "ReadSession", "WriteSession"]

_STATE_KEY = "blockmon"

# Annotations for the handler parameters ``session`` and ``read_session``: Litestar's
# named-dependency marker (2.23 renamed it; the older one warns there).
try:
    from litestar.di import NamedDependency

    WriteSession = NamedDependency[AsyncSession]
    ReadSession = NamedDependency[AsyncSession]
except ImportError:  # Litestar before 2.23
    from litestar.params import Dependency

    WriteSession = Annotated[AsyncSession, Dependency(skip_validation=True)]  # type: ignore[misc,assignment]
    ReadSession = Annotated[AsyncSession, Dependency(skip_validation=True)]  # type: ignore[misc,assignment]


class BlockmonPlugin(InitPluginProtocol):
    """The container's Lifespan, and the ``session`` and ``read_session`` dependencies."""

    def __init__(self, container: Any) -> None:
        found = blockmon_container(container)
        if found is None:
            raise UsageError(f"BlockmonPlugin: no blockmon ApplicationContainer in {container!r}")
        self.container = container
        self._blockmon = found

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(Lifespan(self.container))
        app_config.state[_STATE_KEY] = self._blockmon
        app_config.dependencies.setdefault("session", Provide(_write_session))
        app_config.dependencies.setdefault("read_session", Provide(_read_session))
        return app_config


async def _write_session(state: State) -> AsyncIterator[AsyncSession]:
    sessions = await state[_STATE_KEY].postgres.sessions()
    async with sessions.write() as session:
        yield session


async def _read_session(state: State) -> AsyncIterator[AsyncSession]:
    sessions = await state[_STATE_KEY].postgres.sessions()
    async with sessions.read() as session:
        yield session
