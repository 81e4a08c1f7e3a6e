"""validated in its own revision

Revision ID: s10
Revises: s09
"""

from alembic import op

revision = "s10"
down_revision = "s09"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items VALIDATE CONSTRAINT items_owner2_fk")
