"""``postgres.max_lifetime`` (SQLAlchemy's ``pool_recycle``, applied by the pool guard of
`blockmon.postgres.pool` from its own clock reading): a connection older than that is
closed and reopened before it is handed out again, whether it aged while out or idle,
also after ``dispose()``, and with the metrics installed or not; a younger one is kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.config.settings import PostgresSettings
from blockmon.metrics import PostgresMetrics
from blockmon.postgres.engine import create_engine

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")


async def _pid(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.mark.parametrize("validation", ["bypass", "none"])
@pytest.mark.parametrize("metrics", [False, True])
async def test_a_connection_past_its_lifetime_is_reopened(
    blockmon_config: dict[str, Any], validation: str, metrics: bool
) -> None:
    settings = PostgresSettings.model_validate(
        {
            **blockmon_config["postgres"],
            "pool_size": 1,
            "max_overflow": 0,
            "max_lifetime": 0.6,
            "validation": validation,
        }
    )
    engine = create_engine(settings)
    watched = PostgresMetrics(CollectorRegistry()) if metrics else None
    if watched is not None:
        watched.install(engine)
    try:
        first = await _pid(engine)
        assert await _pid(engine) == first  # young: kept
        await asyncio.sleep(0.8)  # ages while idle in the pool
        second = await _pid(engine)
        assert second != first
        async with engine.connect() as conn:  # ages while checked out
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.8)
        third = await _pid(engine)
        assert third != second
        await engine.dispose()  # the new pool has the same lifetime
        fourth = await _pid(engine)
        assert await _pid(engine) == fourth
        await asyncio.sleep(0.8)
        assert await _pid(engine) != fourth
        guarded = validation == "bypass" or metrics  # else SQLAlchemy applies it itself
        if sa_compat.LAYOUT.ok() and guarded:  # from the guard's clock reading
            assert engine.sync_engine.pool._recycle == -1  # type: ignore[attr-defined]
    finally:
        if watched is not None:
            watched.uninstall()
        await engine.dispose()
