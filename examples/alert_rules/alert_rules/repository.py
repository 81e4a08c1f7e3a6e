"""Alert rules in PostgreSQL, through blockmon's single-statement path."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from blockmon.statements import Statements

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_rules (
    id        serial PRIMARY KEY,
    name      text UNIQUE NOT NULL,
    metric    text NOT NULL,
    threshold double precision NOT NULL,
    enabled   boolean NOT NULL DEFAULT true
)
"""


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    metric: str
    threshold: float
    enabled: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RuleRepository:
    def __init__(self, statements: Statements) -> None:
        self.statements = statements

    async def create_schema(self) -> None:
        await self.statements.execute(SCHEMA)

    async def add(self, name: str, metric: str, threshold: float, enabled: bool = True) -> int:
        rule_id: int = await self.statements.scalar(
            "INSERT INTO alert_rules (name, metric, threshold, enabled)"
            " VALUES (:name, :metric, :threshold, :enabled) RETURNING id",
            {"name": name, "metric": metric, "threshold": threshold, "enabled": enabled},
        )
        return rule_id

    async def get(self, rule_id: int) -> Rule | None:
        row = await self.statements.fetch_one(
            "SELECT id, name, metric, threshold, enabled FROM alert_rules WHERE id = :id",
            {"id": rule_id},
        )
        return None if row is None else Rule(**row._mapping)

    async def enabled(self) -> list[Rule]:
        rows = await self.statements.fetch_all(
            "SELECT id, name, metric, threshold, enabled FROM alert_rules WHERE enabled ORDER BY id"
        )
        return [Rule(**row._mapping) for row in rows]
