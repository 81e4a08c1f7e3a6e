"""The rule service: reads through the Redis cache (cache-aside), writes invalidate it."""

from __future__ import annotations

from typing import Any

from alert_rules.repository import Rule, RuleRepository
from blockmon import Cache


def user_rules_key(user_id: int) -> str:
    return f"user:{user_id}:rules"


def rule_key(rule_id: int) -> str:
    return f"rule:{rule_id}"


class RuleService:
    def __init__(self, repository: RuleRepository, cache: Cache, ttl: float) -> None:
        self.repository = repository
        self.cache = cache
        self.ttl = ttl

    async def add_user(self, telegram_id: int, username: str | None = None) -> int:
        return await self.repository.upsert_user(telegram_id, username)

    async def add_rule(
        self,
        user_id: int,
        name: str,
        rule_type: str,
        conditions: dict[str, Any],
        description: str | None = None,
    ) -> dict[str, Any]:
        rule = await self.repository.add(user_id, name, rule_type, conditions, description)
        # a miss for this id may have been cached (as null) before the row existed
        await self.cache.delete(user_rules_key(user_id), rule_key(rule.id))
        return rule.to_json()

    async def rules_of(self, user_id: int) -> list[dict[str, Any]]:
        async def load() -> list[dict[str, Any]]:
            return [rule.to_json() for rule in await self.repository.active_for(user_id)]

        return await self.cache.get_or_compute_json(user_rules_key(user_id), load, ttl=self.ttl)

    async def rule(self, rule_id: int) -> dict[str, Any] | None:
        async def load() -> dict[str, Any] | None:
            found: Rule | None = await self.repository.get(rule_id)
            return None if found is None else found.to_json()

        return await self.cache.get_or_compute_json(rule_key(rule_id), load, ttl=self.ttl)
