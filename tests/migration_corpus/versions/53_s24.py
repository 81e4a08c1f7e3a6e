"""a comment

Revision ID: s24
Revises: s23
"""

from alembic import op

revision = "s24"
down_revision = "s23"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute("COMMENT ON COLUMN items.note IS 'free text'")
