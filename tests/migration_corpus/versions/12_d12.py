"""check validated at once

Revision ID: d12
Revises: d11
"""

from alembic import op

revision = "d12"
down_revision = "d11"
expected = ["constraint-not-valid"]  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    op.create_check_constraint("items_price_positive", "items", "price > 0")
