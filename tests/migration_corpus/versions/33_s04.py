"""now() is stable: evaluated once, no rewrite

Revision ID: s04
Revises: s03
"""

import sqlalchemy as sa
from alembic import op

revision = "s04"
down_revision = "s03"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column(
        "items", sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"))
    )
