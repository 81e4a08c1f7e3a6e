"""Entry point: start blockmon's Resources, bring blockmon's schema to head, store a user
and two rules, read them back through the cache."""

from __future__ import annotations

import asyncio
import json
import os

from dependency_injector.wiring import Provide, inject

from alert_rules.containers import Container
from alert_rules.services import RuleService
from blockmon import Lifespan, load_mapping
from blockmon.migrations import alembic_config, upgrade


@inject
async def main(service: RuleService = Provide[Container.rule_service]) -> None:
    user_id = await service.add_user(telegram_id=1001, username="ada")
    await service.add_rule(user_id, "cpu-high", "threshold", {"metric": "cpu.load", "above": 0.9})
    await service.add_rule(
        user_id, "disk-full", "threshold", {"metric": "disk.used", "above": 0.95}
    )
    print(json.dumps(await service.rules_of(user_id)))  # computed from PostgreSQL, then cached
    print(json.dumps(await service.rules_of(user_id)))  # served from Redis


async def serve(container: Container) -> None:
    async with Lifespan(container):
        # users / alert_rules / alerts: blockmon's alerting tables, asked for by name
        await upgrade(container.blockmon, config=alembic_config())
        await main()


def cache_ttl() -> float:
    return float(os.environ.get("ALERTS_CACHE_TTL", "60"))


def run() -> None:
    container = Container()
    # blockmon's own loader: config.yml / BLOCKMON_CONFIG, ${VAR} interpolation, DATABASE_URL, REDIS_URL
    container.config.blockmon.from_dict(load_mapping())
    container.config.alerts.cache_ttl.from_value(cache_ttl())
    asyncio.run(serve(container))


if __name__ == "__main__":
    run()
