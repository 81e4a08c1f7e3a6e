"""rows into a new table

Revision ID: s28
Revises: s27
"""

import sqlalchemy as sa
from alembic import op

revision = "s28"
down_revision = "s27"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_table("colours", sa.Column("name", sa.Text()))
    op.execute("INSERT INTO colours (name) VALUES ('red'), ('blue')")
