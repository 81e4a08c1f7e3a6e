"""an identity column

Revision ID: d17
Revises: d16
"""

import sqlalchemy as sa
from alembic import op

revision = "d17"
down_revision = "d16"
expected = ["volatile-default"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column("items", sa.Column("ident", sa.BigInteger(), sa.Identity()))
