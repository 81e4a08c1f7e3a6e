"""a column renamed under running code

Revision ID: d21
Revises: d20
"""

from alembic import op

revision = "d21"
down_revision = "d20"
expected = ["rename-column"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "flag", new_column_name="is_flag")
