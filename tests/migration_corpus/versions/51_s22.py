"""a default changed for new rows only

Revision ID: s22
Revises: s21
"""

from alembic import op

revision = "s22"
down_revision = "s21"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "qty", server_default="0")
