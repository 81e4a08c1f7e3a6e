"""unique index built concurrently

Revision ID: s20
Revises: s19
"""

from blockmon.migrations import create_index_concurrently

revision = "s20"
down_revision = "s19"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    create_index_concurrently("items_code2_key", "items", ["code2"], unique=True)
