"""An application that owns its logging and starts blockmon inside it.

It installs its own root handler and level and its own structlog configuration, then
runs ``ApplicationContainer`` through ``Lifespan``. blockmon's own events (``postgres
connected``) reach the application's handler, secrets masked, at ``log.level`` even
though the root level is WARNING; the root logger, its handlers and level, and
structlog's configuration stay what the application made them, during and after.

Run it like any blockmon application (config.yml, ``DATABASE_URL``, ``REDIS_URL``):
``python examples/host_logging.py``. It prints a JSON verdict on stdout and exits 1 if
blockmon changed any of the application's logging.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import sys
from typing import Any

import structlog
from sqlalchemy import text

from blockmon import ApplicationContainer, Lifespan, load_mapping


def install_own_logging() -> None:
    """What the application does at start, before anything of blockmon runs."""
    logging.config.dictConfig(
        {
            "version": 1,
            # blockmon's loggers exist already (imported above): keep them enabled
            "disable_existing_loggers": False,
            "formatters": {"app": {"format": "app %(levelname)s %(name)s: %(message)s"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "app"}},
            "root": {"handlers": ["stderr"], "level": "WARNING"},
            "loggers": {"app.db": {"level": "DEBUG"}},
        }
    )
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.KeyValueRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def logging_state() -> dict[str, Any]:
    """Everything of the application's logging that a library could change."""
    root = logging.getLogger()
    return {
        "root_handlers": list(root.handlers),
        "root_level": root.level,
        "formatters": [h.formatter for h in root.handlers],
        "app.db": logging.getLogger("app.db").level,
        "sqlalchemy": [logging.getLogger(n).handlers for n in ("sqlalchemy", "sqlalchemy.engine")],
        "structlog": structlog.get_config(),
        "structlog_configured": structlog.is_configured(),
    }


async def main() -> int:
    install_own_logging()
    before = logging_state()
    container = ApplicationContainer()
    container.config.from_dict(load_mapping())
    async with Lifespan(container):
        engine = await container.postgres.engine()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        after_start = logging_state()
        structlog.get_logger("app").info("app ready")
    after_shutdown = logging_state()
    verdict = {
        "untouched_after_start": after_start == before,
        "untouched_after_shutdown": after_shutdown == before,
    }
    print(json.dumps(verdict))
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
