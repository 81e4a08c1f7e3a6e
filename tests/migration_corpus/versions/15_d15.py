"""clock_timestamp() default

Revision ID: d15
Revises: d14
"""

import sqlalchemy as sa
from alembic import op

revision = "d15"
down_revision = "d14"
expected = ["volatile-default"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column(
        "items",
        sa.Column("seen", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()")),
    )
