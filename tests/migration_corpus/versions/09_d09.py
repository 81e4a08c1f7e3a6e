"""SET NOT NULL with nothing proving it

Revision ID: d09
Revises: d08
"""

from alembic import op

revision = "d09"
down_revision = "d08"
expected = ["set-not-null"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "note", nullable=False)
