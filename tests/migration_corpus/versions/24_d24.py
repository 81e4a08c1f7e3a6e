"""CLUSTER

Revision ID: d24
Revises: d23
"""

from alembic import op

revision = "d24"
down_revision = "d23"
expected = ["cluster"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("CLUSTER items USING items_pkey")
