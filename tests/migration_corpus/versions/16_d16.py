"""a serial column

Revision ID: d16
Revises: d15
"""

from alembic import op

revision = "d16"
down_revision = "d15"
expected = ["volatile-default"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD COLUMN seq serial")
