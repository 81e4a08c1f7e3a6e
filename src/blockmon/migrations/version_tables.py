"""Where each migration chain records its applied revisions, so blockmon's chain and an
application's live in one database: blockmon's in ``blockmon_alembic_version``, an
application's in its alembic.ini's ``version_table`` (default ``alembic_version``).
"""

from __future__ import annotations

from alembic.config import Config

from blockmon.config.alembic_ini import DEFAULT_VERSION_TABLE

BLOCKMON_VERSION_TABLE = "blockmon_alembic_version"


def version_table(cfg: Config) -> str:
    """The version table of the chain ``cfg`` describes."""
    return cfg.get_main_option("version_table") or DEFAULT_VERSION_TABLE
