"""a unique constraint building its index

Revision ID: d25
Revises: d24
"""

from alembic import op

revision = "d25"
down_revision = "d24"
expected = ["constraint-builds-index"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_unique_constraint("owners_email_key", "owners", ["email"])
