"""The rule service: reads through the Redis cache (cache-aside), writes invalidate it."""

from __future__ import annotations

from typing import Any

from alert_rules.repository import Rule, RuleRepository
from blockmon.cache import Cache

ENABLED_KEY = "rules:enabled"


class RuleService:
    def __init__(self, repository: RuleRepository, cache: Cache, ttl: float) -> None:
        self.repository = repository
        self.cache = cache
        self.ttl = ttl

    async def add_rule(self, name: str, metric: str, threshold: float) -> int:
        rule_id = await self.repository.add(name, metric, threshold)
        await self.cache.delete(ENABLED_KEY)
        return rule_id

    async def enabled_rules(self) -> list[dict[str, Any]]:
        async def load() -> list[dict[str, Any]]:
            return [rule.to_json() for rule in await self.repository.enabled()]

        return await self.cache.get_or_compute(ENABLED_KEY, load, ttl=self.ttl)

    async def rule(self, rule_id: int) -> dict[str, Any] | None:
        async def load() -> dict[str, Any] | None:
            found: Rule | None = await self.repository.get(rule_id)
            return None if found is None else found.to_json()

        return await self.cache.get_or_compute(f"rule:{rule_id}", load, ttl=self.ttl)
