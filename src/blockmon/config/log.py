"""One logging pipeline for blockmon and the libraries beneath it.

structlog renders every event, including those from standard-library loggers
(SQLAlchemy, asyncpg, Alembic, redis), and a redaction step runs last before
rendering, so no secret reaches a log line at any level.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, MutableMapping
from typing import Any, TextIO

import structlog

from blockmon.config.secrets import redact, redact_value
from blockmon.config.settings import LogSettings

_HANDLER_NAME = "blockmon"
# Loggers that say nothing an operator needs at INFO (alembic announces each plugin on import).
_CHATTY = ("alembic.runtime.plugins",)


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if not isinstance(value, int | float | bool) and value is not None:
            event_dict[key] = redact_value(value)
    return event_dict


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one renderer; safe to call again."""
    stream = stream or sys.stderr
    level = getattr(logging, settings.level.upper())
    as_json = settings.format == "json" or (settings.format == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)


async def logging_resource(settings: LogSettings) -> AsyncIterator[None]:
    """Container Resource: configure at init; flush handlers at shutdown."""
    configure_logging(settings)
    yield
    for handler in logging.getLogger().handlers:
        handler.flush()


def get_logger(name: str) -> Any:
    """A structlog logger named like a stdlib one, so levels can be set per module."""
    return structlog.get_logger(name)


class ConnectionLog:
    """Logs ``<component> connected`` / ``connection lost`` / ``reconnected`` once per
    change of state, never per query or command. ``up`` is a plain attribute so that a
    hot path can test it for the price of one attribute read."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.up = False
        self.seen = False
        self._log = get_logger(f"blockmon.{component}")

    def connected(self) -> None:
        if not self.up:
            event_name = "reconnected" if self.seen else "connected"
            self.up = self.seen = True
            self._log.info(f"{self.component} {event_name}", component=self.component)

    def lost(self, error: BaseException) -> None:
        if self.up or not self.seen:
            self.up, self.seen = False, True
            self._log.warning(
                f"{self.component} connection lost",
                component=self.component,
                error=redact(f"{type(error).__name__}: {error}"),
            )
