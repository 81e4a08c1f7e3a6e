"""foreign key NOT VALID

Revision ID: s09
Revises: s08
"""

from alembic import op

revision = "s09"
down_revision = "s08"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_foreign_key(
        "items_owner2_fk", "items", "owners", ["owner2_id"], ["id"], postgresql_not_valid=True
    )
