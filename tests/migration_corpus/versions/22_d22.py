"""a column dropped under running code

Revision ID: d22
Revises: d21
"""

from alembic import op

revision = "d22"
down_revision = "d21"
expected = ["drop-column"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.drop_column("items", "legacy")
