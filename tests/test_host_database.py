"""The host's database belongs to the host: an application with its own ``users``,
``alerts`` and ``alert_rules`` (an env without models, as applications written in SQL
have) migrates beside blockmon in either order, by ``alembic`` and by ``blockmon db``;
blockmon adds no table of its own; a database migrated by the previous main keeps its
data and stays at head."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from blockmon.config.settings import PostgresSettings, Settings
from blockmon.postgres.engine import create_engine
from blockmon.provisioning.servers import connect
from tests.test_migrations import EXPECTED_COLUMNS, EXPECTED_CONSTRAINTS, EXPECTED_INDEXES, catalog
from tests.test_migrations_cli import BIN, ROOT, blockmon, dsn, environ, fetch, public_tables

DATA = Path(__file__).parent / "data"
APP_TABLES = {"users", "alerts", "alert_rules", "alembic_version", "alembic_version_checksums"}

ENV_PY = '''"""An application's env, written for SQL (no models)."""
from alembic import context
from blockmon.migrations import run

run(context)
'''
REVISION = '''"""users, alert_rules, alerts of the application's own (not blockmon's shapes)

Revision ID: app1
Revises:
"""
from alembic import op

revision = "app1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE users (email text PRIMARY KEY, name text NOT NULL)")
    op.execute("CREATE TABLE alert_rules (id serial PRIMARY KEY, owner text REFERENCES users)")
    op.execute("CREATE TABLE alerts (id serial PRIMARY KEY, body text)")


def downgrade() -> None:
    op.execute("DROP TABLE alerts, alert_rules, users")
'''


@pytest.fixture
def application(tmp_path: Path) -> Path:
    """An application outside the repository: its alembic.ini, env.py, one revision and
    a config.yml naming its chain."""
    app = tmp_path / "app"
    (app / "migrations" / "versions").mkdir(parents=True)
    (app / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n"
    )
    (app / "migrations" / "env.py").write_text(ENV_PY)
    (app / "migrations" / "versions" / "app1_tables.py").write_text(REVISION)
    (app / "config.yml").write_text("migrations:\n  heads_from: alembic.ini\n")
    return app


def run(*args: str, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def app_env(database: PostgresSettings, settings: Settings) -> dict[str, str]:
    env = environ(DATABASE_URL=dsn(database))
    env.pop("BLOCKMON_CONFIG")  # the application's own ./config.yml
    if settings.redis.url is not None:  # an embedded Redis: its socket
        env["REDIS_URL"] = settings.redis.url.get_secret_value()
    return env


@pytest.mark.parametrize("blockmon_first", [True, False], ids=["blockmon-first", "alembic-first"])
async def test_an_application_with_its_own_users_table(
    blockmon_fresh_database: PostgresSettings,
    blockmon_settings: Settings,
    application: Path,
    blockmon_first: bool,
) -> None:
    env = app_env(blockmon_fresh_database, blockmon_settings)
    steps = [
        lambda: run(str(BIN / "blockmon"), "db", "upgrade", "head", env=env, cwd=application),
        lambda: run(str(BIN / "alembic"), "upgrade", "head", env=env, cwd=application),
    ]
    for step in steps if blockmon_first else steps[::-1]:
        await asyncio.to_thread(step)
    assert await public_tables(blockmon_fresh_database) == APP_TABLES
    # An env without models is the application's: its revisions in its version table.
    rows = await fetch(blockmon_fresh_database, "SELECT version_num FROM alembic_version")
    assert [r[0] for r in rows] == ["app1"]
    columns = await fetch(
        blockmon_fresh_database,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'",
    )
    assert {r[0] for r in columns} == {"email", "name"}  # the application's users

    current = run(str(BIN / "blockmon"), "db", "current", env=env, cwd=application)
    assert "schema at app1, at head" in current
    health = run(str(BIN / "blockmon"), "health", "--json", env=env, cwd=application)
    assert '"app": "app1"' in health and '"blockmon"' not in health
    assert '"status": "warn"' not in health and '"status": "fail"' not in health


async def test_a_database_migrated_by_the_previous_main_keeps_its_rows(
    blockmon_fresh_database: PostgresSettings,
) -> None:
    """tests/data: the SQL the previous main's ``blockmon db upgrade head --sql`` wrote
    (2026-12-07, commit a058e64). The shipped config asks for the alerting tables: the
    database is at head as it is, and nothing is lost."""
    conn = await connect(blockmon_fresh_database)
    try:  # the simple query protocol: a whole script
        await conn.execute((DATA / "main-2026-12-07-upgrade.sql").read_text())
        await conn.execute(
            "INSERT INTO users (telegram_id, username) VALUES (42, 'ada');"
            "INSERT INTO alert_rules (user_id, name, rule_type, conditions) "
            "VALUES (1, 'cpu', 'threshold', '{}')"
        )
    finally:
        await conn.close()
    env = environ(DATABASE_URL=dsn(blockmon_fresh_database))
    upgraded = await asyncio.to_thread(blockmon, "db", "upgrade", "head", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "schema at 0001, at head" in upgraded.stdout
    rows = await fetch(blockmon_fresh_database, "SELECT username FROM users")
    assert [r[0] for r in rows] == ["ada"]
    assert len(await fetch(blockmon_fresh_database, "SELECT * FROM alert_rules")) == 1
    checked = await asyncio.to_thread(blockmon, "db", "check", env=env)
    assert checked.returncode == 0, checked.stderr


def test_alembic_against_a_server_that_is_down_is_one_line(tmp_path: Path) -> None:
    """An application's (or the repository's) ``alembic upgrade`` through ``run()``: a
    server that refuses is Alembic's one ``FAILED:`` line, no traceback, no password."""
    config = tmp_path / "config.yml"
    config.write_text(
        "postgres:\n  port: 1\n  password: Sw0rdfish-secret\nmigrations:\n  alerting_tables: true\n"
    )
    result = subprocess.run(
        [str(BIN / "alembic"), "-c", str(Path(__file__).parents[1] / "alembic.ini"),
         "upgrade", "head"],
        env=environ(BLOCKMON_CONFIG=str(config)), cwd=tmp_path, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Sw0rdfish-secret" not in output
    assert "FAILED: database:" in output and "127.0.0.1" in output


@pytest.mark.parametrize(
    "command",
    [("alembic", "upgrade", "head"), ("blockmon", "db", "upgrade", "head")],
    ids=["alembic-at-the-root", "blockmon-db"],
)
async def test_the_projects_own_service_builds_the_seeds_schema_exactly(
    blockmon_fresh_database: PostgresSettings, command: tuple[str, ...]
) -> None:
    """The README's main job, as typed at the repository's root with the shipped
    config.yml (which asks for the alerting tables): the seed's tables, columns,
    constraints and indexes exactly, nothing else but the bookkeeping."""
    env = environ(DATABASE_URL=dsn(blockmon_fresh_database))
    env.pop("BLOCKMON_CONFIG")  # ./config.yml, the shipped one
    await asyncio.to_thread(run, str(BIN / command[0]), *command[1:], env=env, cwd=ROOT)
    assert await public_tables(blockmon_fresh_database) == {
        "users", "alert_rules", "alerts",
        "blockmon_alembic_version", "blockmon_alembic_version_checksums",
    }  # fmt: skip
    engine = create_engine(blockmon_fresh_database)
    try:
        assert await catalog(engine) == (EXPECTED_COLUMNS, EXPECTED_CONSTRAINTS, EXPECTED_INDEXES)
    finally:
        await engine.dispose()


PLUGIN_TEST = """
from sqlalchemy import text

from blockmon import Status


async def test_the_apps_users(blockmon_container):
    engine = await blockmon_container.postgres.engine()
    async with engine.connect() as conn:
        columns = await conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        ))
        assert {r[0] for r in columns} == {"email", "name"}
        version = await conn.execute(text("SELECT version_num FROM alembic_version"))
        assert version.scalar() == "app1"
    checker = await blockmon_container.monitoring.health()
    schema = await checker.check("postgres:schema", max_age=0)
    assert schema.status is Status.PASS, schema.reason
    assert (await checker.readiness()).status is Status.PASS
"""


def test_the_plugin_migrates_an_application_with_its_own_users(application: Path) -> None:
    """``blockmon_alembic_config`` for an application whose chain has its own ``users``,
    ``alerts`` and ``alert_rules`` (the issue's ``RevisionFailed``): the per-run database
    gets the application's tables, the schema check passes, readiness passes."""
    (application / "conftest.py").write_text('pytest_plugins = ["blockmon.testing"]\n')
    (application / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nblockmon_alembic_config = alembic.ini\n"
    )
    (application / "test_app.py").write_text(PLUGIN_TEST)
    (application / "config.yml").unlink()  # the run's servers, as the suite's own
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=application, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout, result.stdout


async def test_alerting_tables_beside_an_applications_own_users_is_one_line(
    blockmon_fresh_database: PostgresSettings, blockmon_settings: Settings, application: Path
) -> None:
    """The alerting schema's tables are named ``users``, ``alert_rules``, ``alerts``: an
    application with a table of one of those names cannot also turn them on. The second
    chain stops in one line naming the table; the first stays as it was."""
    (application / "config.yml").write_text(
        "migrations:\n  heads_from: alembic.ini\n  alerting_tables: true\n"
    )
    env = app_env(blockmon_fresh_database, blockmon_settings)
    run(str(BIN / "alembic"), "upgrade", "head", env=env, cwd=application)
    result = await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "blockmon"), "db", "upgrade", "head"],
        env=env, cwd=application, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("blockmon: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert 'relation "users" already exists' in errors[0]
    assert "failed and was rolled back (the database stays at base)" in errors[0]
    rows = await fetch(blockmon_fresh_database, "SELECT version_num FROM alembic_version")
    assert [r[0] for r in rows] == ["app1"]
    columns = await fetch(
        blockmon_fresh_database,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'",
    )
    assert {r[0] for r in columns} == {"email", "name"}  # the application's, untouched
    assert await public_tables(blockmon_fresh_database) == APP_TABLES  # nothing of 0001
