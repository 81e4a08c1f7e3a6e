"""``create_index_concurrently``: an index built without blocking writes, from inside a
revision (PostgreSQL refuses ``CONCURRENTLY`` in a transaction block)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def create_index_concurrently(
    index_name: str, table_name: str, columns: Sequence[Any], **kw: Any
) -> None:
    """``op.create_index(..., postgresql_concurrently=True)`` outside the revision's
    transaction (Alembic's ``autocommit_block``). A build that failed before leaves an
    INVALID index of that name: online, it is dropped first so the build runs again."""
    from alembic import op
    from sqlalchemy import text

    context = op.get_context()
    with context.autocommit_block():
        if not context.as_sql:
            invalid = op.get_bind().execute(
                text(
                    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = :name AND NOT i.indisvalid"
                ),
                {"name": index_name},
            )
            if invalid.first() is not None:
                op.drop_index(index_name, table_name=table_name, postgresql_concurrently=True)
        op.create_index(index_name, table_name, list(columns), postgresql_concurrently=True, **kw)
