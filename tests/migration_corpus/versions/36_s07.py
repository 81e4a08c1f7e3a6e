"""more numeric precision, same scale

Revision ID: s07
Revises: s06
"""

import sqlalchemy as sa
from alembic import op

revision = "s07"
down_revision = "s06"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "amount", type_=sa.Numeric(12, 2))
