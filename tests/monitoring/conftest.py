"""The monitoring tests expect the test database at the packaged migrations' head, as
``blockmon up`` leaves it, so the schema observation passes whatever ran before."""

from __future__ import annotations

import asyncio

import pytest

from blockmon.config.settings import Settings
from blockmon.migrations.api import alembic_config, upgrade
from blockmon.postgres.engine import create_engine


@pytest.fixture(scope="session", autouse=True)
def _schema_at_head(blockmon_settings: Settings) -> None:
    async def migrate() -> None:
        engine = create_engine(blockmon_settings.postgres)
        try:
            await upgrade(engine, config=alembic_config())
        finally:
            await engine.dispose()

    asyncio.run(migrate())
