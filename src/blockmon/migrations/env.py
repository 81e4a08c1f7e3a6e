"""Alembic environment of the packaged migrations: all of it is in blockmon.migrations.runner."""

from alembic import context

from blockmon.migrations.runner import run_blockmon

run_blockmon(context)
