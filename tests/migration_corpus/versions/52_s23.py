"""NOT NULL dropped

Revision ID: s23
Revises: s22
"""

from alembic import op

revision = "s23"
down_revision = "s22"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "name", nullable=True)
