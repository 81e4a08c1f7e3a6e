"""an index renamed

Revision ID: s29
Revises: s28
"""

from alembic import op

revision = "s29"
down_revision = "s28"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER INDEX ix_items_name RENAME TO ix_items_label")
