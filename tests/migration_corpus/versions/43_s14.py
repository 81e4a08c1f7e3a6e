"""validated

Revision ID: s14
Revises: s13
"""

from alembic import op

revision = "s14"
down_revision = "s13"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items VALIDATE CONSTRAINT must_nn")
