"""a NOT NULL column with a constant default

Revision ID: s03
Revises: s02
"""

import sqlalchemy as sa
from alembic import op

revision = "s03"
down_revision = "s02"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column("items", sa.Column("status", sa.String(10), server_default="new", nullable=False))
