"""blockmon's logging: its own loggers by default, the whole process only when asked.

Every blockmon event runs through blockmon's own chain of structlog processors (never
structlog's global configuration), which masks secrets, and then goes to the stdlib
logger of the same name (``blockmon.*``), so it reaches whatever handlers the host
installed. With ``log.configure_root`` (the ``blockmon`` CLI, the standalone Alembic
env) blockmon also takes over the root logger: one handler on stderr renders every
record, SQLAlchemy, asyncpg, Alembic, redis and uvicorn included, redacting again.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from blockmon.config.secrets import redact, redact_value
from blockmon.config.settings import LogSettings

_OWN = "blockmon"
_HANDLER_NAME = "blockmon"
# Loggers that say nothing an operator needs at INFO (alembic announces each plugin on import).
_CHATTY = ("alembic.runtime.plugins",)
# Keys a stdlib Formatter shows from the record itself.
_ON_RECORD = frozenset({"event", "level", "logger", "timestamp", "exception"})


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if not isinstance(value, int | float | bool) and value is not None:
            event_dict[key] = redact_value(value)
    return event_dict


class _Event(dict[str, Any]):
    """A redacted event dict as ``record.msg``: structlog's ProcessorFormatter reads its
    fields, a plain ``logging.Formatter`` shows it as ``event key=value ...``."""

    def __str__(self) -> str:
        fields = [f"{k}={_field(v)}" for k, v in self.items() if k not in _ON_RECORD]
        line = " ".join([str(self.get("event", "")), *fields])
        return f"{line}\n{self['exception']}" if "exception" in self else line


def _field(value: Any) -> str:
    text = str(value)
    return repr(text) if not text or any(c.isspace() or c in "'\"=" for c in text) else text


def _to_record(logger: Any, method_name: str, event_dict: Any) -> Any:
    args, kwargs = structlog.stdlib.ProcessorFormatter.wrap_for_formatter(
        logger, method_name, _Event(event_dict)
    )
    # The traceback is in the event, redacted; ``Logger.exception`` would attach it raw.
    return args, {**kwargs, "exc_info": False}


# Sources of fields every event gets (the tracing package adds the active span's ids).
_EVENT_FIELDS: list[Callable[[], Mapping[str, str]]] = []


def add_event_fields(source: Callable[[], Mapping[str, str]]) -> None:
    """Give every event (blockmon's, and every record when blockmon renders the root
    logger) the fields ``source()`` returns at that moment."""
    _EVENT_FIELDS.append(source)


def remove_event_fields(source: Callable[[], Mapping[str, str]]) -> None:
    """Undo `add_event_fields`."""
    _EVENT_FIELDS.remove(source)


def _add_event_fields(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for source in _EVENT_FIELDS:  # none unless tracing is on: one empty loop per event
        event_dict.update(source())
    return event_dict


_CHAIN: list[Any] = [
    structlog.stdlib.filter_by_level,  # first: a dropped event costs one level check
    structlog.contextvars.merge_contextvars,
    _add_event_fields,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,  # tracebacks redacted too, not left to the host
    _redact,
    _to_record,
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger on the stdlib logger ``name`` (under ``blockmon``), redacting,
    whatever structlog's global configuration says."""
    return structlog.stdlib.BoundLogger(logging.getLogger(name), _CHAIN, {})


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Set the level of blockmon's loggers; with ``configure_root`` also route every
    stdlib record through one redacting renderer on ``stream``. Safe to call again."""
    level = getattr(logging, settings.level.upper())
    logging.getLogger(_OWN).setLevel(level)
    if settings.configure_root:
        _take_over_root(settings, level, stream)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record comes (as logging's last resort
    does), so redirecting or closing a stream it was given earlier cannot break it."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _take_over_root(settings: LogSettings, level: int, stream: TextIO | None) -> None:
    target = stream or sys.stderr
    as_json = settings.format == "json" or (settings.format == "auto" and not target.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            _add_event_fields,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
    )
    handler = _Stderr() if stream is None else logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in _own_handlers():
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)


def _own_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if h.get_name() == _HANDLER_NAME]


async def logging_resource(settings: LogSettings) -> AsyncIterator[None]:
    """Container Resource: configure at init; at shutdown flush blockmon's handler and give
    blockmon's loggers back the level they had, so the host's process is as it was."""
    own = logging.getLogger(_OWN)
    previous = own.level
    configure_logging(settings)
    try:
        yield
    finally:
        own.setLevel(previous)
        for handler in _own_handlers():
            handler.flush()


class _RedactRecord(logging.Filter):
    """Masks secrets in a library's record before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


def log_sql(logger_name: str) -> None:
    """Log the statements SQLAlchemy writes to ``logger_name`` at INFO, redacted, through
    the handlers of the process (SQLAlchemy's own ``echo=True`` adds a stdout handler)."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO)
    if not any(isinstance(f, _RedactRecord) for f in logger.filters):
        logger.addFilter(_RedactRecord())


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
