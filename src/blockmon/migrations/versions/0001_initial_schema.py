"""initial schema: users, alert_rules, alerts (the Go design's 001_initial_schema)

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(255)),
        sa.Column("first_name", sa.String(255)),
        sa.Column("last_name", sa.String(255)),
        sa.Column("language_code", sa.String(10), server_default=sa.text("'en'")),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now),
        sa.PrimaryKeyConstraint("id", name="users_pkey"),
        sa.UniqueConstraint("telegram_id", name="users_telegram_id_key"),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer()),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("rule_type", sa.String(50), nullable=False),
        sa.Column("conditions", postgresql.JSONB(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now),
        sa.PrimaryKeyConstraint("id", name="alert_rules_pkey"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="alert_rules_user_id_fkey", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer()),
        sa.Column("user_id", sa.Integer()),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(20), server_default=sa.text("'info'")),
        sa.Column("status", sa.String(20), server_default=sa.text("'pending'")),
        sa.Column("metadata", postgresql.JSONB()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="alerts_pkey"),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], name="alerts_rule_id_fkey", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="alerts_user_id_fkey", ondelete="CASCADE"
        ),
    )
    op.create_index("idx_users_telegram_id", "users", ["telegram_id"])
    op.create_index("idx_alert_rules_user_id", "alert_rules", ["user_id"])
    op.create_index("idx_alerts_rule_id", "alerts", ["rule_id"])


def downgrade() -> None:
    op.drop_index("idx_alerts_rule_id", table_name="alerts")
    op.drop_index("idx_alert_rules_user_id", table_name="alert_rules")
    op.drop_index("idx_users_telegram_id", table_name="users")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
    op.drop_table("users")
