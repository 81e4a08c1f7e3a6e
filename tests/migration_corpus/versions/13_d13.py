"""NOT VALID then VALIDATE in the same transaction

Revision ID: d13
Revises: d12
"""

from alembic import op

revision = "d13"
down_revision = "d12"
expected = ["constraint-not-valid"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD CONSTRAINT price_cap CHECK (price < 1000000) NOT VALID")
    op.execute("ALTER TABLE items VALIDATE CONSTRAINT price_cap")
