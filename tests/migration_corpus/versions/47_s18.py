"""a new table's foreign key and checks

Revision ID: s18
Revises: s17
"""

import sqlalchemy as sa
from alembic import op

revision = "s18"
down_revision = "s17"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer()),
        sa.Column("body", sa.Text()),
    )
    op.create_foreign_key("notes_owner_fk", "notes", "owners", ["owner_id"], ["id"])
    op.create_check_constraint("notes_body", "notes", "length(body) < 1000")
    op.alter_column("notes", "body", nullable=False)
