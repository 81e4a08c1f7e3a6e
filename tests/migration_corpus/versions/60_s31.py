"""a column dropped after the models stopped naming it

Revision ID: s31
Revises: s30
"""

from alembic import op

revision = "s31"
down_revision = "s30"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.drop_column("items", "retired")  # gone from the models (env.py): the release before
