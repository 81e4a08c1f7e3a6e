"""lock_timeout switched off

Revision ID: d27
Revises: d26
"""

import sqlalchemy as sa
from alembic import op

revision = "d27"
down_revision = "d26"
expected = ["missing-lock-timeout"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = 0")
    op.add_column("items", sa.Column("free", sa.Text()))
