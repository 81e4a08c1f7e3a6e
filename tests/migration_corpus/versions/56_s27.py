"""an index dropped concurrently

Revision ID: s27
Revises: s26
"""

from alembic import op

revision = "s27"
down_revision = "s26"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_items_note", table_name="items", postgresql_concurrently=True)
