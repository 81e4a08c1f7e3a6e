"""a constant text default

Revision ID: s30
Revises: s29
"""

import sqlalchemy as sa
from alembic import op

revision = "s30"
down_revision = "s29"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column("items", sa.Column("kind", sa.Text(), server_default=sa.text("'plain'::text")))
