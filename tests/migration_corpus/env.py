"""The corpus runs through blockmon's runner, like an application's chain."""

from alembic import context
from sqlalchemy import MetaData

from blockmon.migrations import run

run(context, target_metadata=MetaData())
