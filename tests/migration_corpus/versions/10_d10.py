"""a NOT VALID check does not prove NOT NULL until validated

Revision ID: d10
Revises: d09
"""

from alembic import op

revision = "d10"
down_revision = "d09"
expected = ["set-not-null"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD CONSTRAINT half_nn CHECK (half IS NOT NULL) NOT VALID")
    op.alter_column("items", "half", nullable=False)
