"""integer to bigint rewrites

Revision ID: d03
Revises: d02
"""

import sqlalchemy as sa
from alembic import op

revision = "d03"
down_revision = "d02"
expected = ["column-type-rewrite"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "qty", type_=sa.BigInteger())
