"""the unique constraint adopts the built index

Revision ID: s21
Revises: s20
"""

from alembic import op

revision = "s21"
down_revision = "s20"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.execute(
        "ALTER TABLE items ADD CONSTRAINT items_code2_key UNIQUE USING INDEX items_code2_key"
    )
