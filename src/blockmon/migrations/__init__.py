"""Schema migrations: the Python API, the Alembic env, the advisory lock, the tables and
the revisions (``versions/``).

An Alembic ``env.py`` needs one line of blockmon: ``from blockmon.migrations import run``,
then ``run(context)`` (blockmon's chain) or ``run(context, target_metadata=AppMetadata)``
(an application's own chain, beside blockmon's in the same database).
"""

from __future__ import annotations

from blockmon.migrations.api import (
    SchemaStatus,
    alembic_config,
    check,
    downgrade,
    schema_status,
    stamp,
    upgrade,
    verify_checksums,
)
from blockmon.migrations.concurrent import create_index_concurrently
from blockmon.migrations.runner import run

__all__ = [
    "SchemaStatus",
    "alembic_config",
    "check",
    "create_index_concurrently",
    "downgrade",
    "run",
    "schema_status",
    "stamp",
    "upgrade",
    "verify_checksums",
]
