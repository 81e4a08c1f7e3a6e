"""Users and their alert rules in blockmon's own tables (``blockmon.migrations.tables``, brought to
head by blockmon's migrations), through blockmon's single-statement path."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from blockmon import Statements

RULE_COLUMNS = "id, user_id, name, description, rule_type, conditions, is_active"


@dataclass(frozen=True)
class Rule:
    id: int
    user_id: int
    name: str
    description: str | None
    rule_type: str
    conditions: dict[str, Any]
    is_active: bool

    @classmethod
    def from_row(cls, row: Any) -> Rule:
        data = dict(row._mapping)
        conditions = data["conditions"]  # jsonb reads back as text on the fast path
        data["conditions"] = json.loads(conditions) if isinstance(conditions, str) else conditions
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RuleRepository:
    def __init__(self, statements: Statements) -> None:
        self.statements = statements

    async def upsert_user(self, telegram_id: int, username: str | None = None) -> int:
        """The user with this Telegram id, created on first sight."""
        user_id: int = await self.statements.scalar(
            "INSERT INTO users (telegram_id, username) VALUES (:telegram_id, :username)"
            " ON CONFLICT (telegram_id) DO UPDATE SET username = EXCLUDED.username,"
            " updated_at = now() RETURNING id",
            {"telegram_id": telegram_id, "username": username},
        )
        return user_id

    async def add(
        self,
        user_id: int,
        name: str,
        rule_type: str,
        conditions: dict[str, Any],
        description: str | None = None,
    ) -> Rule:
        row = await self.statements.fetch_one(
            "INSERT INTO alert_rules (user_id, name, description, rule_type, conditions)"
            " VALUES (:user_id, :name, :description, :rule_type, CAST(:conditions AS jsonb))"
            f" RETURNING {RULE_COLUMNS}",
            {
                "user_id": user_id,
                "name": name,
                "description": description,
                "rule_type": rule_type,
                "conditions": json.dumps(conditions),
            },
        )
        return Rule.from_row(row)

    async def get(self, rule_id: int) -> Rule | None:
        row = await self.statements.fetch_one(
            f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = :id", {"id": rule_id}
        )
        return None if row is None else Rule.from_row(row)

    async def active_for(self, user_id: int) -> list[Rule]:
        rows = await self.statements.fetch_all(
            f"SELECT {RULE_COLUMNS} FROM alert_rules"
            " WHERE user_id = :user_id AND is_active ORDER BY id",
            {"user_id": user_id},
        )
        return [Rule.from_row(row) for row in rows]
