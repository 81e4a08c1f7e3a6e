"""a view

Revision ID: s25
Revises: s24
"""

from alembic import op

revision = "s25"
down_revision = "s24"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("CREATE VIEW priced_items AS SELECT id, price FROM items")
