"""Entry point: start blockmon's Resources, store a few rules, read them back through the cache."""

from __future__ import annotations

import asyncio
import json
import os

from dependency_injector.wiring import Provide, inject

from alert_rules.containers import Container
from alert_rules.services import RuleService
from blockmon.config_file import load_mapping
from blockmon.lifespan import Lifespan


@inject
async def main(service: RuleService = Provide[Container.rule_service]) -> None:
    await service.repository.create_schema()
    await service.add_rule("cpu-high", "cpu.load", 0.9)
    await service.add_rule("disk-full", "disk.used", 0.95)
    print(json.dumps(await service.enabled_rules()))  # computed from PostgreSQL, then cached
    print(json.dumps(await service.enabled_rules()))  # served from Redis


async def serve(container: Container) -> None:
    async with Lifespan(container):
        await main()


def run() -> None:
    container = Container()
    # blockmon's own loader: config.yml / BLOCKMON_CONFIG, ${VAR} interpolation, DATABASE_URL, REDIS_URL
    container.config.blockmon.from_dict(load_mapping())
    container.config.alerts.cache_ttl.from_value(float(os.environ.get("ALERTS_CACHE_TTL", "60")))
    asyncio.run(serve(container))


if __name__ == "__main__":
    run()
