"""text to varchar(n)

Revision ID: d05
Revises: d04
"""

import sqlalchemy as sa
from alembic import op

revision = "d05"
down_revision = "d04"
expected = ["column-type-rewrite"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "note", type_=sa.String(200))
