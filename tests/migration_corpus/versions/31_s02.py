"""a nullable column

Revision ID: s02
Revises: s01
"""

import sqlalchemy as sa
from alembic import op

revision = "s02"
down_revision = "s01"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column("items", sa.Column("extra", sa.Text()))
