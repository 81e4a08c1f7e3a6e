"""widening a varchar

Revision ID: s05
Revises: s04
"""

import sqlalchemy as sa
from alembic import op

revision = "s05"
down_revision = "s04"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "label", type_=sa.String(100))
