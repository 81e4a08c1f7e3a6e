"""a type change with USING

Revision ID: d07
Revises: d06
"""

import sqlalchemy as sa
from alembic import op

revision = "d07"
down_revision = "d06"
expected = ["column-type-rewrite"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "qty", type_=sa.Text(), postgresql_using="qty::text")
