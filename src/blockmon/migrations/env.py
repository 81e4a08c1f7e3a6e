"""Alembic environment of the packaged migrations: all of it is in blockmon.migration_env."""

from alembic import context

from blockmon.migration_env import run

run(context)
