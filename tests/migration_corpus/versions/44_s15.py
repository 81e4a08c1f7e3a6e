"""SET NOT NULL proven by the validated check

Revision ID: s15
Revises: s14
"""

from alembic import op

revision = "s15"
down_revision = "s14"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.alter_column("items", "must", nullable=False)
    op.drop_constraint("must_nn", "items", type_="check")
