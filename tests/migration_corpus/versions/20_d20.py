"""a table renamed under running code

Revision ID: d20
Revises: d19
"""

from alembic import op

revision = "d20"
down_revision = "d19"
expected = ["rename-table"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.rename_table("to_rename", "renamed")
