"""shrinking a varchar rewrites (checks every row)

Revision ID: d04
Revises: d03
"""

import sqlalchemy as sa
from alembic import op

revision = "d04"
down_revision = "d03"
expected = ["column-type-rewrite"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "name", type_=sa.String(20))
