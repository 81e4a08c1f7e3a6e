"""the tables the corpus changes

Revision ID: c000
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "c000"
down_revision = None
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(100)),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("note", sa.Text()),
        sa.Column("qty", sa.Integer()),
        sa.Column("owner_id", sa.Integer()),
        sa.Column("owner2_id", sa.Integer()),
        sa.Column("code", sa.String(20)),
        sa.Column("code2", sa.String(20)),
        sa.Column("label", sa.String(50)),
        sa.Column("label2", sa.String(30)),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("amount2", sa.Numeric(10, 2)),
        sa.Column("must", sa.Text()),
        sa.Column("loose", sa.Text(), nullable=False),
        sa.Column("half", sa.Text()),
        sa.Column("legacy", sa.Text()),
        sa.Column("retired", sa.Text()),
        sa.Column("flag", sa.Boolean()),
        sa.Column("score", sa.Integer()),
        sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    op.create_table("to_rename", sa.Column("id", sa.Integer()))
    op.create_table("no_pk", sa.Column("id", sa.Integer(), nullable=False))
