"""Where each migration chain records its applied revisions, so blockmon's chain and an
application's live in one database: blockmon's in ``blockmon_alembic_version``, an
application's in its alembic.ini's ``version_table`` (default ``alembic_version``).

The first release kept blockmon's revision in ``alembic_version``; such a database is
moved to this layout by the next writing command (upgrade, downgrade, stamp).
"""

from __future__ import annotations

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from blockmon.config.alembic_ini import DEFAULT_VERSION_TABLE
from blockmon.config.log import get_logger

BLOCKMON_VERSION_TABLE = "blockmon_alembic_version"
_log = get_logger("blockmon.migrate")


def version_table(cfg: Config) -> str:
    """The version table of the chain ``cfg`` describes."""
    return cfg.get_main_option("version_table") or DEFAULT_VERSION_TABLE


def adopt_first_release(connection: Connection, script: ScriptDirectory) -> None:
    """Move blockmon's revisions from ``alembic_version`` to blockmon's own table (and
    drop ``alembic_version`` if that leaves it empty); a no-op on any other database."""
    if _exists(connection, BLOCKMON_VERSION_TABLE) or not _exists(
        connection, DEFAULT_VERSION_TABLE
    ):
        return
    ours = {revision.revision for revision in script.walk_revisions()}
    rows = connection.execute(text(f"SELECT version_num FROM {DEFAULT_VERSION_TABLE}"))
    found = sorted(str(v) for v in rows.scalars() if v in ours)
    if not found:
        connection.rollback()
        return
    context = MigrationContext.configure(connection, opts={"version_table": BLOCKMON_VERSION_TABLE})
    for revision in found:
        context.stamp(script, revision)
    connection.execute(
        text(f"DELETE FROM {DEFAULT_VERSION_TABLE} WHERE version_num = ANY(:found)"),
        {"found": found},
    )
    left = connection.execute(text(f"SELECT count(*) FROM {DEFAULT_VERSION_TABLE}")).scalar()
    if not left:
        connection.execute(text(f"DROP TABLE {DEFAULT_VERSION_TABLE}"))
    connection.commit()
    _log.info(
        "moved blockmon's revisions to their own version table",
        revisions=found,
        table=BLOCKMON_VERSION_TABLE,
    )


def _exists(connection: Connection, table: str) -> bool:
    found = connection.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})
    return bool(found.scalar())
