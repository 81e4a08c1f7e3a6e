"""numeric to unconstrained numeric

Revision ID: s08
Revises: s07
"""

import sqlalchemy as sa
from alembic import op

revision = "s08"
down_revision = "s07"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "amount2", type_=sa.Numeric())
