"""two findings in one revision

Revision ID: d28
Revises: d27
"""

from alembic import op

revision = "d28"
down_revision = "d27"
expected = ["index-not-concurrent", "set-not-null"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_index("ix_items_qty", "items", ["qty"])
    op.alter_column("items", "qty", nullable=False)
