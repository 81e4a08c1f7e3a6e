"""a sequence

Revision ID: s26
Revises: s25
"""

from alembic import op

revision = "s26"
down_revision = "s25"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("CREATE SEQUENCE invoice_numbers")
