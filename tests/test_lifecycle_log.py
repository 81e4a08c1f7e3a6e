"""PostgreSQL connection lifecycle log against a throwaway server we stop and start:
connected, lost, reconnected, each once per change of state, in every validation mode."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from support import captured_logs

from blockmon.config.settings import PostgresSettings
from blockmon.postgres.engine import create_engine
from blockmon.testing.servers import PostgresServer


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as pg:
        yield pg


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    with captured_logs("info") as stream:
        yield stream


async def _query(engine: AsyncEngine) -> str:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.02)"))
        return "ok"
    except Exception as error:
        return type(error).__name__


def _events(stream: io.StringIO) -> list[str]:
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [r["event"] for r in records if r.get("logger") == "blockmon.postgres"]


@pytest.mark.parametrize("validation", ["bypass", "pre_ping", "none"])
async def test_connected_lost_reconnected_once_each(
    server: PostgresServer, log_lines: io.StringIO, validation: str
) -> None:
    engine = create_engine(
        PostgresSettings(
            url=server.url, validation=validation, validation_window=0.0, connect_timeout=5
        )
    )
    try:
        # several pooled connections, so several die together when the server stops
        assert await asyncio.gather(*(_query(engine) for _ in range(4))) == ["ok"] * 4
        assert _events(log_lines) == ["postgres connected"]

        await asyncio.to_thread(server.stop)
        failures = [await _query(engine) for _ in range(5)]
        assert "ok" not in failures
        assert _events(log_lines) == ["postgres connected", "postgres connection lost"]

        await asyncio.to_thread(server.start)
        results = [await _query(engine) for _ in range(3)]
        results += await asyncio.gather(*(_query(engine) for _ in range(4)))
        # "none" does not validate: each dead pooled connection fails once when used
        assert results[-4:] == ["ok"] * 4, results
        assert _events(log_lines) == [
            "postgres connected",
            "postgres connection lost",
            "postgres reconnected",
        ]
        lost = next(
            json.loads(line)
            for line in log_lines.getvalue().splitlines()
            if "connection lost" in line
        )
        assert lost["level"] == "warning" and lost["error"]
    finally:
        await engine.dispose()
        await asyncio.to_thread(server.start)
