"""Checksums of applied revisions (Flyway's validate): an applied revision whose file
changed since is reported by ``blockmon db check`` and by health, with what changed;
formatting, comments and docstrings are not changes; revisions applied before checksums
existed are information, recorded on request; a downgrade removes the record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from alembic.config import Config

from blockmon.config.settings import PostgresSettings, Settings
from blockmon.migrations.api import downgrade, upgrade, verify_checksums
from blockmon.migrations.checksums import Changed
from blockmon.postgres.engine import create_engine
from tests.test_migration_round_trip import chain
from tests.test_migrations_cli import blockmon, fetch, one_error_line
from tests.test_migrations_side_by_side import env_for, service

__all__ = ["service"]  # the fixture: a copy of the example service

REVISION = Path("migrations") / "versions" / "a001_accounts.py"


async def recorded(database: PostgresSettings) -> dict[str, str]:
    rows = await fetch(database, "SELECT revision, checksum FROM alembic_version_checksums")
    return {r[0]: r[1] for r in rows}


def schema_check(health: str) -> dict[str, object]:
    (check,) = json.loads(health)["checks"]["postgres:schema"]
    assert isinstance(check, dict)
    return check


async def test_an_edited_applied_revision_is_reported_by_db_check_and_health(
    blockmon_fresh_database: PostgresSettings, blockmon_settings: Settings, service: Path
) -> None:
    env = env_for(blockmon_fresh_database, service, blockmon_settings.redis)
    env["BLOCKMON_LOG_LEVEL"] = "warning"

    def run(*args: str) -> tuple[int, str, str]:
        result = blockmon(*args, env=env, cwd=service)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr

    code, out, err = await asyncio.to_thread(run, "db", "upgrade")
    assert code == 0, out + err
    (checksum,) = (await recorded(blockmon_fresh_database)).values()
    assert len(checksum) == 64
    # the untouched chain is clean, for db check and for health
    code, out, err = await asyncio.to_thread(run, "db", "check")
    assert code == 0 and err == "", out + err
    assert "applied revisions match their files" in out
    code, out, _ = await asyncio.to_thread(run, "health", "--json")
    assert schema_check(out)["status"] == "pass", out

    revision = service / REVISION
    revision.write_text(
        revision.read_text().replace(
            'sa.Column("email", sa.String(255), nullable=False)',
            'sa.Column("email", sa.String(200), nullable=False)',
        )
    )
    result = await asyncio.to_thread(blockmon, "db", "check", env=env, cwd=service)
    assert result.returncode == 1, result.stdout + result.stderr
    one_error_line(
        result,
        f"revision a001 ({REVISION}) changed since it was applied: "
        "...le=False), sa.Column('email', sa.String([-255-]{+200+}), nullable=False), ...",
    )
    code, out, _ = await asyncio.to_thread(run, "health", "--json")
    check = schema_check(out)
    assert check["status"] == "warn", out
    assert check["output"] == f"app revision a001 changed since it was applied ({REVISION})"
    assert await recorded(blockmon_fresh_database) == {"a001": checksum}  # never rewritten


SOURCE = '''"""things

Revision ID: r1
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "r1"
down_revision = None


def upgrade() -> None:
    op.create_table("things", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("things")
'''

# the same program: another docstring, comments (a lint marker among them), other
# quotes, other line breaks
REFORMATTED = """'''things, with a longer message

Revision ID: r1
Revises:
'''
import sqlalchemy as sa
from alembic import op

revision = 'r1'  # the id
down_revision = None


def upgrade() -> None:
    '''Create the table.'''
    # blockmon: accept index-not-concurrent -- not an index, a comment
    op.create_table(
        'things',
        sa.Column('id', sa.Integer(), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table('things')
"""


async def test_formatting_comments_and_docstrings_are_no_change_code_is(
    blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    ini = chain(tmp_path)
    (path,) = (ini.parent / "versions").glob("r1.py")
    path.write_text(SOURCE)
    engine = create_engine(blockmon_fresh_database)
    try:
        await upgrade(engine, config=Config(str(ini)))
        report = await verify_checksums(engine, config=Config(str(ini)))
        assert (report.changed, report.unrecorded) == ([], [])

        path.write_text(REFORMATTED)
        report = await verify_checksums(engine, config=Config(str(ini)))
        assert report.changed == []

        # code that did not run on upgrade still counts: the file is not what was applied
        path.write_text(SOURCE.replace('op.drop_table("things")', 'op.drop_table("thing")'))
        report = await verify_checksums(engine, config=Config(str(ini)))
        ((changed),) = report.changed
        assert changed.revision == "r1" and changed.path == str(path)
        assert changed.changes == ("op.drop_table('[-things-]{+thing+}')",)

        # a downgrade removes the record; the next upgrade records the file as it is then
        path.write_text(SOURCE)
        await downgrade(engine, "base", config=Config(str(ini)))
        assert await recorded(blockmon_fresh_database) == {}
        await upgrade(engine, config=Config(str(ini)))
        report = await verify_checksums(engine, config=Config(str(ini)))
        assert report.changed == [] and list(await recorded(blockmon_fresh_database)) == ["r1"]
    finally:
        await engine.dispose()


async def test_revisions_applied_before_checksums_are_information_and_can_be_recorded(
    blockmon_fresh_database: PostgresSettings, blockmon_settings: Settings, service: Path
) -> None:
    env = env_for(blockmon_fresh_database, service, blockmon_settings.redis)
    env["BLOCKMON_LOG_LEVEL"] = "warning"

    def db(*args: str) -> tuple[int, str, str]:
        result = blockmon("db", *args, env=env, cwd=service)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr

    assert (await asyncio.to_thread(db, "upgrade"))[0] == 0
    # a database migrated by a blockmon that kept no checksums
    await fetch(blockmon_fresh_database, "DROP TABLE alembic_version_checksums")
    code, out, err = await asyncio.to_thread(db, "check")
    assert code == 0 and err == "", out + err
    assert f"blockmon: revision a001 ({REVISION}): checksum not recorded" in out
    assert "blockmon db check --record" in out

    code, out, err = await asyncio.to_thread(db, "check", "--record")
    assert code == 0, out + err
    assert "revision a001: checksum recorded" in out and "not recorded" not in out
    assert list(await recorded(blockmon_fresh_database)) == ["a001"]

    # a reviewed change to an applied revision is accepted by name, never wholesale
    revision = service / REVISION
    revision.write_text(revision.read_text().replace("String(255)", "String(200)"))
    code, out, err = await asyncio.to_thread(db, "check", "--record")
    assert code == 1 and "revision a001" in err, out + err
    code, out, err = await asyncio.to_thread(db, "check", "--accept-change", "a001")
    assert code == 0, out + err
    assert "revision a001: checksum recorded" in out

    result = await asyncio.to_thread(
        blockmon, "db", "check", "--accept-change", "nope", env=env, cwd=service
    )
    assert result.returncode == 2
    one_error_line(result, "db check: --accept-change: nope is not an applied revision")


def test_what_changed_is_capped_and_keeps_secrets_out() -> None:
    secret = "op.execute(\"ALTER ROLE app PASSWORD 'hunter2-in-a-revision'\")"
    changed = Changed(
        "r9", "/elsewhere/r9.py", (f"+{secret}", *(f"+x{i} = {i}" for i in range(80)))
    )
    line = changed.line()
    assert "hunter2-in-a-revision" not in line and "PASSWORD" in line
    assert line.startswith("revision r9 (/elsewhere/r9.py) changed since it was applied: ")
    assert line.endswith("... (81 changes)") and len(line) < 400
