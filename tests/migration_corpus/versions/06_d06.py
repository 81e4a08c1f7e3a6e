"""numeric scale change

Revision ID: d06
Revises: d05
"""

import sqlalchemy as sa
from alembic import op

revision = "d06"
down_revision = "d05"
expected = ["column-type-rewrite"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "price", type_=sa.Numeric(10, 4))
