"""Alembic environment for `alembic` run from the repository root; the revisions
live in the package (src/blockmon/migrations/versions), the logic in blockmon.migrations.runner."""

from alembic import context

from blockmon.migrations.runner import run_blockmon

run_blockmon(context)
