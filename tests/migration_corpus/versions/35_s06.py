"""varchar to text

Revision ID: s06
Revises: s05
"""

import sqlalchemy as sa
from alembic import op

revision = "s06"
down_revision = "s05"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "label2", type_=sa.Text())
