"""integer to numeric

Revision ID: d08
Revises: d07
"""

import sqlalchemy as sa
from alembic import op

revision = "d08"
down_revision = "d07"
expected = ["column-type-rewrite"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "score", type_=sa.Numeric(12, 2))
