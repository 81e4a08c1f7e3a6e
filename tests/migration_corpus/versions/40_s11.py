"""check NOT VALID

Revision ID: s11
Revises: s10
"""

from alembic import op

revision = "s11"
down_revision = "s10"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID")
