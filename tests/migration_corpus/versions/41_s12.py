"""the check validated in its own revision

Revision ID: s12
Revises: s11
"""

from alembic import op

revision = "s12"
down_revision = "s11"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("ALTER TABLE items VALIDATE CONSTRAINT amount_positive")
