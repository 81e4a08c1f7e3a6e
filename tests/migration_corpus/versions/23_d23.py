"""VACUUM FULL

Revision ID: d23
Revises: d22
"""

from alembic import op

revision = "d23"
down_revision = "d22"
expected = ["vacuum-full"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("VACUUM FULL items")
