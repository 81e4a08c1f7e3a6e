"""The first release's import for Alembic env.py files, kept so they keep working:
``from blockmon.migration_env import run``. New env.py files use ``blockmon.migrations``."""

from blockmon.migrations import run

__all__ = ["run"]
