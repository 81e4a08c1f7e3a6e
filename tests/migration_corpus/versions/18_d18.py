"""a stored generated column

Revision ID: d18
Revises: d17
"""

import sqlalchemy as sa
from alembic import op

revision = "d18"
down_revision = "d17"
expected = ["volatile-default"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column(
        "items", sa.Column("double_price", sa.Numeric(), sa.Computed("price * 2", persisted=True))
    )
