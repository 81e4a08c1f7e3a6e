"""a uuid column filled by gen_random_uuid()

Revision ID: d14
Revises: d13
"""

import sqlalchemy as sa
from alembic import op

revision = "d14"
down_revision = "d13"
expected = ["volatile-default"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.add_column("items", sa.Column("uid", sa.Uuid(), server_default=sa.text("gen_random_uuid()")))
