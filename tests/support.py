"""Small helpers shared by the core tests: bounded polling and server-side views of
our own connections (by application_name / client_name)."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from blockmon.config.log import configure_logging
from blockmon.config.settings import LogLevel, LogSettings, PostgresSettings, Settings
from blockmon.provisioning.servers import connect

TIMEOUT = 30.0


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(5)}"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes (servers act asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def pg_backends(settings: PostgresSettings, application_name: str) -> int:
    """How many server backends carry ``application_name`` (seen from another connection)."""
    conn = await connect(settings, database="postgres")
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            application_name,
        )
        return count
    finally:
        await conn.close()


async def redis_clients(client: Any, client_name: str) -> int:
    """How many Redis connections carry ``client_name``, asked over ``client``."""
    listing = await client.client_list()
    return sum(1 for entry in listing if entry.get("name") == client_name)


def with_names(config: dict[str, Any], name: str) -> dict[str, Any]:
    """``config`` with a unique PostgreSQL application_name and Redis client_name."""
    config["postgres"]["application_name"] = name
    config["redis"]["client_name"] = name
    return config


def settings_of(config: dict[str, Any]) -> Settings:
    return Settings.model_validate(config)


@contextmanager
def captured_logs(level: LogLevel) -> Iterator[io.StringIO]:
    """blockmon's pipeline rendering JSON lines into a buffer; the root and blockmon loggers
    restored after."""
    root, own = logging.getLogger(), logging.getLogger("blockmon")
    saved = (root.level, list(root.handlers), own.level)
    stream = io.StringIO()
    configure_logging(LogSettings(level=level, format="json", configure_root=True), stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
        own.setLevel(saved[2])
