"""IS NOT NULL check, NOT VALID

Revision ID: s13
Revises: s12
"""

from alembic import op

revision = "s13"
down_revision = "s12"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD CONSTRAINT must_nn CHECK (must IS NOT NULL) NOT VALID")
