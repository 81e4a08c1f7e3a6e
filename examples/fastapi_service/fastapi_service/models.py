"""The service's tables (its migrations create them; `alembic check` compares them)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, text

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(255), nullable=False, unique=True),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
)
