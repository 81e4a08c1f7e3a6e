"""reviewed: an index accepted in the revision file

Revision ID: a01
Revises: d28
"""

from alembic import op

# blockmon: accept index-not-concurrent -- items holds a few rows when this runs
revision = "a01"
down_revision = "d28"
expected = []  # the rules the lint finds here (accepted below)
accepted = ["index-not-concurrent"]


def upgrade() -> None:
    op.create_index("ix_items_price", "items", ["price"])
