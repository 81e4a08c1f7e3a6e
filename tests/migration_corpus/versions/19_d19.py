"""random() default

Revision ID: d19
Revises: d18
"""

import sqlalchemy as sa
from alembic import op

revision = "d19"
down_revision = "d18"
expected = ["volatile-default"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column("items", sa.Column("jitter", sa.Float(), server_default=sa.text("random()")))
