"""Start and stop a container's Resources around an application's life, in any framework.

One object serves every host: ``FastAPI(lifespan=Lifespan(c))``, ``Starlette(lifespan=...)``,
``Litestar(lifespan=[Lifespan(c)])``, ``app.cleanup_ctx.append(Lifespan(c))`` in aiohttp,
and ``async with Lifespan(c):`` in scripts and workers. It yields None, so Starlette's
request ``state`` stays empty; Starlette's ``app.state.blockmon`` is blockmon's container.

/readyz answers 503 "starting" until every Resource has started and "shutting down" from
the moment the Lifespan begins to stop them. ``Lifespan(c, drain_signals=True)`` (an
application served by uvicorn or gunicorn) fails readiness on SIGTERM/SIGINT at once and
lets the server see the signal ``monitoring.shutdown_delay`` seconds later
(docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Iterator
from typing import Any

from dependency_injector import containers, providers
from dependency_injector.ext.starlette import Lifespan as _StarletteLifespan

from blockmon.finish import finish_first
from blockmon.monitoring.drain import delay_signals


class Lifespan(_StarletteLifespan):
    """dependency-injector's Starlette lifespan, plus what blockmon needs: settings
    validated first, logging started first, and every Resource shut down again when
    start-up fails halfway. Readiness follows it (module docstring)."""

    def __init__(self, container: containers.Container, *, drain_signals: bool = False) -> None:
        super().__init__(container)
        self.drain_signals = drain_signals
        self._signals = contextlib.ExitStack()

    def __call__(self, app: Any) -> Lifespan:
        """Starlette and FastAPI call this with the app: its ``state.blockmon`` is then
        blockmon's container (`blockmon.fastapi`'s sessions find it there)."""
        state = getattr(app, "state", None)
        found = blockmon_container(self.container)
        if state is not None and found is not None:
            state.blockmon = found
        return self

    async def __aenter__(self) -> None:
        parts = list(_blockmon_parts(self.container))
        for part in parts:
            part.settings()
        readiness = [part.monitoring.readiness() for part in parts]
        for state in readiness:
            state.starting()
        try:
            for part in parts:
                await part.logging.init()
            starting = _start(self.container)
            if starting is not None:
                # A signal or a server stopping mid-start lets the start finish: cut short,
                # dependency-injector's futures break ("Exception in callback ...
                # InvalidStateError" on the loop's log) and what was started is not known,
                # so could not be shut down.
                started = await finish_first(starting)
                failures = [r for r in started if isinstance(r, BaseException)]
                if failures:
                    raise failures[0]
        except BaseException:
            await super().__aexit__(None, None, None)
            raise
        for state in readiness:
            state.ready()
        if self.drain_signals:
            for part, state in zip(parts, readiness, strict=True):
                delay = part.settings().monitoring.shutdown_delay
                self._signals.enter_context(delay_signals(state, delay))

    async def __aexit__(self, *exc_info: Any) -> None:
        self._signals.close()
        for part in _blockmon_parts(self.container):
            part.monitoring.readiness().shutting_down()
        await super().__aexit__(*exc_info)


# What init_resources() starts by default: BaseResource from dependency-injector 4.49 (the
# base of Resource and of its context-local kind), Resource before.
_RESOURCES = getattr(providers, "BaseResource", providers.Resource)


def _start(container: containers.Container) -> Awaitable[list[Any]] | None:
    """Start every Resource, as dependency-injector's ``init_resources()`` does, but let
    all of them settle before a failure is raised: its ``gather`` returns at the first
    failure while Resources it does not depend on are still starting, and those (an
    engine, a pool) finished after the shutdown and were left open."""
    pending = [
        started
        for provider in container.traverse(types=[_RESOURCES])
        if inspect.isawaitable(started := provider.init())
    ]
    return asyncio.gather(*pending, return_exceptions=True) if pending else None


def blockmon_container(container: Any) -> Any:
    """blockmon's ApplicationContainer: ``container`` itself or the first nested in it."""
    return next(_blockmon_parts(container), None)


def _blockmon_parts(container: Any) -> Iterator[Any]:
    """The container itself if it is blockmon's, and blockmon containers nested in it
    (``blockmon = providers.Container(ApplicationContainer, ...)``)."""
    if {"settings", "logging"} <= container.providers.keys():
        yield container
        return
    for provider in container.providers.values():
        if isinstance(provider, providers.Container):
            yield from _blockmon_parts(provider)
