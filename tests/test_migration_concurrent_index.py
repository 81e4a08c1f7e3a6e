"""``create_index_concurrently`` run for real: the index is built outside the revision's
transaction, and a build that failed (an INVALID index left behind) is redone on rerun."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config

from blockmon.config.settings import PostgresSettings
from blockmon.errors import RevisionFailed
from blockmon.migrations.api import upgrade
from blockmon.postgres.engine import create_engine
from tests.test_migration_lint import chain_copy
from tests.test_migrations_cli import fetch

VALID = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_code2_key'::regclass"


async def test_a_failed_concurrent_build_is_redone_on_the_next_upgrade(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    cfg = Config(str(chain_copy(tmp_path, "c000", "s20") / "alembic.ini"))
    engine = create_engine(blockmon_fresh_database)
    try:
        await upgrade(engine, "c000", config=cfg)
        async with engine.begin() as conn:  # duplicates: the unique build fails
            await conn.exec_driver_sql(
                "INSERT INTO items (id, name, loose, code2) VALUES (1, 'a', 'x', 'dup'), "
                "(2, 'b', 'x', 'dup')"
            )
        with pytest.raises(RevisionFailed, match="revision s20"):
            await upgrade(engine, "head", config=cfg)
        assert [r[0] for r in await fetch(blockmon_fresh_database, VALID)] == [False]
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM items WHERE id = 2")
        status = await upgrade(engine, "head", config=cfg)
    finally:
        await engine.dispose()
    assert status.current == "s20"
    assert [r[0] for r in await fetch(blockmon_fresh_database, VALID)] == [True]
