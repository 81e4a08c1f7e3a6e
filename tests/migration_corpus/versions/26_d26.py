"""a primary key building its index

Revision ID: d26
Revises: d25
"""

from alembic import op

revision = "d26"
down_revision = "d25"
expected = ["constraint-builds-index"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_primary_key("no_pk_pkey", "no_pk", ["id"])
