"""unique index, in the transaction

Revision ID: d02
Revises: d01
"""

from alembic import op

revision = "d02"
down_revision = "d01"
expected = ["index-not-concurrent"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_index("ix_items_code", "items", ["code"], unique=True)
