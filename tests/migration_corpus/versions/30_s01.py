"""index built concurrently with the helper

Revision ID: s01
Revises: a01
"""

from blockmon.migrations import create_index_concurrently

revision = "s01"
down_revision = "a01"
expected = []  # the rules the lint finds here
accepted = []


def upgrade() -> None:
    create_index_concurrently("ix_items_note", "items", ["note"])
