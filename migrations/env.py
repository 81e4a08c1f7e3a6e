"""Alembic environment for `alembic` run from the repository root; the revisions
live in the package (src/blockmon/migrations/versions), the logic in blockmon.migration_env."""

from alembic import context

from blockmon.migration_env import run

run(context)
