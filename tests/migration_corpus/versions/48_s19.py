"""a new table renamed and reshaped before anyone uses it

Revision ID: s19
Revises: s18
"""

import sqlalchemy as sa
from alembic import op

revision = "s19"
down_revision = "s18"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_table("drafts", sa.Column("id", sa.Integer()), sa.Column("old", sa.Text()))
    op.alter_column("drafts", "old", new_column_name="body", type_=sa.String(10))
    op.rename_table("drafts", "sketches")
    op.create_index("ix_sketches_body", "sketches", ["body"])
