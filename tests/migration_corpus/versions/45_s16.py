"""SET NOT NULL on a column that already is

Revision ID: s16
Revises: s15
"""

from alembic import op

revision = "s16"
down_revision = "s15"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "loose", nullable=False)
