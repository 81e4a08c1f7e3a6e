"""The schema observation: the applied Alembic revision, compared with the heads."""

from __future__ import annotations

from sqlalchemy import text

from blockmon.health import Status, alembic_schema_probe
from blockmon.postgres.engine import create_engine


async def test_schema_probe_reports_revision_and_warns_off_head(blockmon_fresh_database):
    engine = create_engine(blockmon_fresh_database)
    try:
        async with engine.connect() as conn:
            assert await alembic_schema_probe()(conn) is None  # no migrations table
            empty = await alembic_schema_probe(lambda: ["abc123"])(conn)
            await conn.execute(text("CREATE TABLE alembic_version (version_num varchar(32))"))
            await conn.execute(text("INSERT INTO alembic_version VALUES ('abc123')"))
            at_head = await alembic_schema_probe(lambda: ["abc123"])(conn)
            behind = await alembic_schema_probe(lambda: ["def456"])(conn)
            unknown = await alembic_schema_probe()(conn)
            await conn.rollback()
    finally:
        await engine.dispose()
    assert at_head is not None and at_head.status == Status.PASS and at_head.value == "abc123"
    assert behind is not None and behind.status == Status.WARN
    assert behind.output == "schema at abc123, head is def456"
    assert unknown is not None and unknown.value == "abc123"
    assert empty is not None and empty.status == Status.WARN
    assert empty.output == "schema at (none), head is abc123"
