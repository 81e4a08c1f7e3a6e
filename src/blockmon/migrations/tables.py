"""blockmon's tables as SQLAlchemy metadata, so applications can query them and
``alembic check`` can prove that these models and the migrations agree.

Names (tables, constraints, indexes) are exactly those of the first migration, which
reproduces the Go design's ``001_initial_schema`` and PostgreSQL's default naming.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


users = Table(
    "users",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("telegram_id", BigInteger, nullable=False),
    Column("username", String(255)),
    Column("first_name", String(255)),
    Column("last_name", String(255)),
    Column("language_code", String(10), server_default=text("'en'")),
    Column("is_active", Boolean, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
    PrimaryKeyConstraint("id", name="users_pkey"),
    UniqueConstraint("telegram_id", name="users_telegram_id_key"),
    Index("idx_users_telegram_id", "telegram_id"),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("user_id", Integer),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("rule_type", String(50), nullable=False),
    Column("conditions", JSONB, nullable=False),
    Column("is_active", Boolean, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
    PrimaryKeyConstraint("id", name="alert_rules_pkey"),
    ForeignKeyConstraint(
        ["user_id"], ["users.id"], name="alert_rules_user_id_fkey", ondelete="CASCADE"
    ),
    Index("idx_alert_rules_user_id", "user_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, autoincrement=True, nullable=False),
    Column("rule_id", Integer),
    Column("user_id", Integer),
    Column("title", String(255), nullable=False),
    Column("message", Text, nullable=False),
    Column("severity", String(20), server_default=text("'info'")),
    Column("status", String(20), server_default=text("'pending'")),
    Column("metadata", JSONB),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("id", name="alerts_pkey"),
    ForeignKeyConstraint(
        ["rule_id"], ["alert_rules.id"], name="alerts_rule_id_fkey", ondelete="CASCADE"
    ),
    ForeignKeyConstraint(["user_id"], ["users.id"], name="alerts_user_id_fkey", ondelete="CASCADE"),
    Index("idx_alerts_rule_id", "rule_id"),
)
