"""index on an existing table, in the transaction

Revision ID: d01
Revises: c000
"""

from alembic import op

revision = "d01"
down_revision = "c000"
expected = ["index-not-concurrent"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_index("ix_items_name", "items", ["name"])
