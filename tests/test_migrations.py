"""Migrations against real PostgreSQL, each test in a database of its own."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, text
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.settings import MigrationSettings, PostgresSettings, Settings
from blockmon.containers import ApplicationContainer
from blockmon.errors import MigrationError, RevisionFailed, UsageError
from blockmon.lifespan import Lifespan
from blockmon.migrations import tables as schema
from blockmon.migrations.api import (
    alembic_config,
    check,
    downgrade,
    schema_status,
    upgrade,
)
from blockmon.postgres.engine import create_engine

EXPECTED_COLUMNS = {
    ("users", "id"): ("integer", None, "NO", "nextval('users_id_seq'::regclass)"),
    ("users", "telegram_id"): ("bigint", None, "NO", None),
    ("users", "username"): ("character varying", 255, "YES", None),
    ("users", "first_name"): ("character varying", 255, "YES", None),
    ("users", "last_name"): ("character varying", 255, "YES", None),
    ("users", "language_code"): ("character varying", 10, "YES", "'en'::character varying"),
    ("users", "is_active"): ("boolean", None, "YES", "true"),
    ("users", "created_at"): ("timestamp with time zone", None, "YES", "now()"),
    ("users", "updated_at"): ("timestamp with time zone", None, "YES", "now()"),
    ("alert_rules", "id"): ("integer", None, "NO", "nextval('alert_rules_id_seq'::regclass)"),
    ("alert_rules", "user_id"): ("integer", None, "YES", None),
    ("alert_rules", "name"): ("character varying", 255, "NO", None),
    ("alert_rules", "description"): ("text", None, "YES", None),
    ("alert_rules", "rule_type"): ("character varying", 50, "NO", None),
    ("alert_rules", "conditions"): ("jsonb", None, "NO", None),
    ("alert_rules", "is_active"): ("boolean", None, "YES", "true"),
    ("alert_rules", "created_at"): ("timestamp with time zone", None, "YES", "now()"),
    ("alert_rules", "updated_at"): ("timestamp with time zone", None, "YES", "now()"),
    ("alerts", "id"): ("integer", None, "NO", "nextval('alerts_id_seq'::regclass)"),
    ("alerts", "rule_id"): ("integer", None, "YES", None),
    ("alerts", "user_id"): ("integer", None, "YES", None),
    ("alerts", "title"): ("character varying", 255, "NO", None),
    ("alerts", "message"): ("text", None, "NO", None),
    ("alerts", "severity"): ("character varying", 20, "YES", "'info'::character varying"),
    ("alerts", "status"): ("character varying", 20, "YES", "'pending'::character varying"),
    ("alerts", "metadata"): ("jsonb", None, "YES", None),
    ("alerts", "created_at"): ("timestamp with time zone", None, "YES", "now()"),
    ("alerts", "sent_at"): ("timestamp with time zone", None, "YES", None),
}
EXPECTED_CONSTRAINTS = {
    ("users", "users_pkey", "PRIMARY KEY (id)"),
    ("users", "users_telegram_id_key", "UNIQUE (telegram_id)"),
    ("alert_rules", "alert_rules_pkey", "PRIMARY KEY (id)"),
    (
        "alert_rules",
        "alert_rules_user_id_fkey",
        "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE",
    ),
    ("alerts", "alerts_pkey", "PRIMARY KEY (id)"),
    (
        "alerts",
        "alerts_rule_id_fkey",
        "FOREIGN KEY (rule_id) REFERENCES alert_rules(id) ON DELETE CASCADE",
    ),
    (
        "alerts",
        "alerts_user_id_fkey",
        "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE",
    ),
    ("blockmon_alembic_version", "blockmon_alembic_version_pkc", "PRIMARY KEY (version_num)"),
    (
        "blockmon_alembic_version_checksums",
        "blockmon_alembic_version_checksums_pkey",
        "PRIMARY KEY (revision)",
    ),
}
EXPECTED_INDEXES = {
    "users_pkey": "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)",
    "users_telegram_id_key": (
        "CREATE UNIQUE INDEX users_telegram_id_key ON public.users USING btree (telegram_id)"
    ),
    "idx_users_telegram_id": (
        "CREATE INDEX idx_users_telegram_id ON public.users USING btree (telegram_id)"
    ),
    "alert_rules_pkey": "CREATE UNIQUE INDEX alert_rules_pkey ON public.alert_rules USING btree (id)",
    "idx_alert_rules_user_id": (
        "CREATE INDEX idx_alert_rules_user_id ON public.alert_rules USING btree (user_id)"
    ),
    "alerts_pkey": "CREATE UNIQUE INDEX alerts_pkey ON public.alerts USING btree (id)",
    "idx_alerts_rule_id": "CREATE INDEX idx_alerts_rule_id ON public.alerts USING btree (rule_id)",
    "blockmon_alembic_version_pkc": (
        "CREATE UNIQUE INDEX blockmon_alembic_version_pkc ON public.blockmon_alembic_version USING btree (version_num)"
    ),
    "blockmon_alembic_version_checksums_pkey": (
        "CREATE UNIQUE INDEX blockmon_alembic_version_checksums_pkey ON public.blockmon_alembic_version_checksums USING btree (revision)"
    ),
}
# migration bookkeeping beside the schema: the version table and the revisions' checksums
BOOKKEEPING = {"blockmon_alembic_version", "blockmon_alembic_version_checksums"}


@pytest.fixture
async def engine(blockmon_fresh_database: PostgresSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(blockmon_fresh_database)
    try:
        yield engine
    finally:
        await engine.dispose()


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        )
        return {row[0] for row in rows}


async def catalog(engine: AsyncEngine) -> tuple[dict, set, dict]:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        columns = {
            (r.table_name, r.column_name): (
                r.data_type,
                r.character_maximum_length,
                r.is_nullable,
                r.column_default,
            )
            for r in await conn.execute(
                text(
                    "SELECT table_name, column_name, data_type, character_maximum_length, "
                    "is_nullable, column_default FROM information_schema.columns "
                    "WHERE table_schema = 'public' "
                    "AND table_name NOT LIKE 'blockmon_alembic_version%'"
                )
            )
        }
        constraints = {
            (r[0], r[1], r[2])
            for r in await conn.execute(
                text(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
                )
            )
        }
        indexes = {
            r[0]: r[1]
            for r in await conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
            )
        }
    return columns, constraints, indexes


async def test_upgrade_builds_the_go_schema_exactly_and_downgrade_removes_it(
    engine: AsyncEngine,
) -> None:
    status = await upgrade(engine, "head", config=alembic_config())
    assert status == ("0001", "0001", True)
    assert await tables(engine) == {"users", "alert_rules", "alerts"} | BOOKKEEPING
    columns, constraints, indexes = await catalog(engine)
    assert columns == EXPECTED_COLUMNS
    assert constraints == EXPECTED_CONSTRAINTS
    assert indexes == EXPECTED_INDEXES

    status = await downgrade(engine, "base", config=alembic_config())
    assert status == (None, "0001", False)
    assert await tables(engine) == BOOKKEEPING
    async with engine.connect() as conn:
        for table in BOOKKEEPING:
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0
        sequences = await conn.execute(text("SELECT relname FROM pg_class WHERE relkind = 'S'"))
        assert sequences.all() == []

    assert (await upgrade(engine, "head", config=alembic_config())).at_head
    assert await catalog(engine) == (EXPECTED_COLUMNS, EXPECTED_CONSTRAINTS, EXPECTED_INDEXES)


async def test_models_are_usable_and_cascade(engine: AsyncEngine) -> None:
    await upgrade(engine, config=alembic_config())
    async with engine.begin() as conn:
        user_id = (
            await conn.execute(
                schema.users.insert().values(telegram_id=42).returning(schema.users.c.id)
            )
        ).scalar_one()
        rule_id = (
            await conn.execute(
                schema.alert_rules.insert()
                .values(user_id=user_id, name="r", rule_type="price", conditions={"gt": 1})
                .returning(schema.alert_rules.c.id)
            )
        ).scalar_one()
        await conn.execute(
            schema.alerts.insert().values(
                rule_id=rule_id, user_id=user_id, title="t", message="m", metadata={"k": 1}
            )
        )
        row = (await conn.execute(schema.users.select())).one()
        assert (row.language_code, row.is_active) == ("en", True)
        assert row.created_at is not None
        alert = (await conn.execute(schema.alerts.select())).one()
        assert (alert.severity, alert.status, alert.metadata) == ("info", "pending", {"k": 1})
        await conn.execute(schema.users.delete())
        assert (await conn.execute(text("SELECT count(*) FROM alerts"))).scalar() == 0
        assert (await conn.execute(text("SELECT count(*) FROM alert_rules"))).scalar() == 0


async def test_check_passes_at_head_and_fails_on_drift(engine: AsyncEngine) -> None:
    with pytest.raises(MigrationError, match="not up to date"):
        await check(engine, config=alembic_config())
    await upgrade(engine, config=alembic_config())
    await check(engine, config=alembic_config())

    drifted = MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["users"].append_column(Column("nickname", String(50)))
    with pytest.raises(MigrationError, match=r"add_column.*nickname"):
        await check(engine, metadata=drifted, config=alembic_config())

    async with engine.begin() as conn:  # another application's table is not drift
        await conn.execute(text("CREATE TABLE app_own (id int)"))
    await check(engine, config=alembic_config())


async def test_programmatic_run_inside_the_running_loop_commits(
    blockmon_settings: Settings, blockmon_fresh_database: PostgresSettings
) -> None:
    container = ApplicationContainer()
    container.config.from_dict(
        blockmon_settings.model_copy(update={"postgres": blockmon_fresh_database}).model_dump()
    )
    async with Lifespan(container):
        assert (await schema_status(container)).current is None
        assert await upgrade(container) == ("0001", "0001", True)
        assert await upgrade(container) == ("0001", "0001", True)  # nothing to do
        app_engine = await container.postgres.engine()
        async with app_engine.connect() as conn:  # the app's pooled connection is left clean
            assert (await conn.execute(text("SHOW lock_timeout"))).scalar() == "0"
    other = create_engine(blockmon_fresh_database)
    try:
        assert {"users", "alert_rules", "alerts"} <= await tables(other)
        assert (await schema_status(other, config=alembic_config())).at_head
    finally:
        await other.dispose()


def failing_revision(tmp_path: Path, body: str) -> Path:
    (tmp_path / "0002_test_only.py").write_text(
        textwrap.dedent(
            '''\
            """test only: a revision that fails midway"""
            from alembic import op

            revision = "0002"
            down_revision = "0001"
            branch_labels = None
            depends_on = None


            def upgrade():
            '''
        )
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\n\ndef downgrade():\n    pass\n"
    )
    return tmp_path


async def test_failing_revision_leaves_no_trace(engine: AsyncEngine, tmp_path: Path) -> None:
    versions = failing_revision(
        tmp_path,
        """\
        op.execute("CREATE TABLE half_done (id int)")
        op.execute("INSERT INTO users (telegram_id) VALUES (7)")
        op.execute("SELECT 1 / 0")
        """,
    )
    config = alembic_config(extra_version_locations=[str(versions)])
    with pytest.raises(RevisionFailed) as failure:
        await upgrade(engine, "head", config=config)
    message = str(failure.value)
    assert "revision 0002" in message and "division by zero" in message
    assert "stays at 0001" in message
    assert await tables(engine) == {"users", "alert_rules", "alerts"} | BOOKKEEPING
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM users"))).scalar() == 0
    assert (await schema_status(engine, config=config)) == ("0001", "0002", False)


async def test_ddl_gives_up_after_lock_timeout(engine: AsyncEngine, tmp_path: Path) -> None:
    await upgrade(engine, config=alembic_config())
    versions = failing_revision(tmp_path, 'op.execute("ALTER TABLE users ADD COLUMN x int")\n')
    config = alembic_config(extra_version_locations=[str(versions)])
    async with engine.connect() as holder:
        await holder.execute(text("LOCK TABLE users IN ACCESS SHARE MODE"))  # held till rollback
        with pytest.raises(RevisionFailed, match=r"revision 0002.*lock timeout"):
            await upgrade(
                engine, config=config, settings=MigrationSettings(lock_timeout=0.3, lock_wait=5)
            )
        await holder.rollback()
    assert (await schema_status(engine, config=config)).current == "0001"


async def test_unknown_revision_is_a_usage_error(engine: AsyncEngine) -> None:
    with pytest.raises(UsageError, match="nosuchrev"):
        await upgrade(engine, "nosuchrev", config=alembic_config())
    with pytest.raises(UsageError, match="revision"):
        await downgrade(engine, "0001+5", config=alembic_config())
    assert await tables(engine) <= BOOKKEEPING
