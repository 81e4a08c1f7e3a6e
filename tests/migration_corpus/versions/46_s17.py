"""a new table and its index in one revision

Revision ID: s17
Revises: s16
"""

import sqlalchemy as sa
from alembic import op

revision = "s17"
down_revision = "s16"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_table(
        "tags", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("label", sa.Text())
    )
    op.create_index("ix_tags_label", "tags", ["label"])
