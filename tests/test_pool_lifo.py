"""The engine's pool hands out the most recently returned connection (LIFO): a warm
one, which costs the client markedly less CPU than rotating through all of them."""

from __future__ import annotations

from typing import Any

import pytest

from blockmon.config.settings import PostgresSettings
from blockmon.postgres.engine import create_engine

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")


async def test_the_last_connection_returned_is_the_next_handed_out(
    blockmon_config: dict[str, Any],
) -> None:
    settings = PostgresSettings.model_validate(
        {**blockmon_config["postgres"], "pool_size": 3, "max_overflow": 0}
    )
    engine = create_engine(settings)
    try:
        first, second, third = [await engine.connect() for _ in range(3)]
        pids = {}
        for name, conn in (("first", first), ("second", second), ("third", third)):
            raw = await conn.get_raw_connection()
            pids[name] = raw.driver_connection.get_server_pid()
        for conn in (first, third, second):  # second goes back last
            await conn.close()
        for _ in range(5):
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                assert raw.driver_connection.get_server_pid() == pids["second"]
    finally:
        await engine.dispose()
