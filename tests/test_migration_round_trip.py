"""``blockmon.testing.migrations.round_trip``: an application's chain up, down and up
again, its models against the schema, and the lint, each failure named."""

from __future__ import annotations

from pathlib import Path

import pytest

from blockmon.config.settings import PostgresSettings
from blockmon.testing.migrations import round_trip
from tests.test_migration_lint import EXAMPLE

ENV = """from alembic import context
from sqlalchemy import Column, Index, Integer, MetaData, Table, Text

from blockmon.migrations import run

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True){extra})
{index}
run(context, target_metadata=metadata)
"""

FIRST = '''"""things"""

import sqlalchemy as sa
from alembic import op

revision = "r1"
down_revision = None


def upgrade() -> None:
    op.create_table("things", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    {down}
'''

INDEXED = '''"""an index built in the transaction"""

from alembic import op

revision = "r2"
down_revision = "r1"


def upgrade() -> None:
    op.create_index("ix_things_id", "things", ["id"])


def downgrade() -> None:
    op.drop_index("ix_things_id", table_name="things")
'''


def chain(
    tmp_path: Path,
    *,
    down: str = 'op.drop_table("things")',
    extra: str = "",
    indexed: bool = False,
) -> Path:
    root = tmp_path / "app"
    (root / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s\npath_separator = os\n"
    )
    index = 'Index("ix_things_id", things.c.id)' if indexed else ""
    (root / "env.py").write_text(ENV.format(extra=extra, index=index))
    (root / "versions" / "r1.py").write_text(FIRST.format(down=down))
    if indexed:
        (root / "versions" / "r2.py").write_text(INDEXED)
    return root / "alembic.ini"


async def test_a_sound_chain_passes(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    await round_trip(chain(tmp_path), blockmon_fresh_database)


async def test_the_example_service_passes(
    blockmon_fresh_database: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    await round_trip(EXAMPLE / "alembic.ini", blockmon_fresh_database)


async def test_a_downgrade_that_leaves_the_table_fails_the_second_upgrade(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match=r"revision r1 up again: .*things"):
        await round_trip(chain(tmp_path, down="pass"), blockmon_fresh_database)


async def test_models_that_differ_from_the_schema_fail(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="models and schema at head differ"):
        await round_trip(chain(tmp_path, extra=', Column("name", Text)'), blockmon_fresh_database)


async def test_a_revision_the_lint_finds_fails(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="db lint: r2 index-not-concurrent: CREATE INDEX"):
        await round_trip(chain(tmp_path, indexed=True), blockmon_fresh_database)
