"""``blockmon health``: every check once, as a table or IETF health+json.
Exit 0 on pass or warn, 1 on fail, 2 on a configuration error."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blockmon.config.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    health = sub.add_parser(
        "health", help="check PostgreSQL, Redis and the schema once and report", parents=[common]
    )
    health.add_argument("--json", action="store_true", help="print application/health+json")
    health.set_defaults(handler=run_health)


def run_health(args: argparse.Namespace) -> int:
    import asyncio

    from blockmon.cli.settings import command_settings
    from blockmon.config.log import configure_logging

    settings = command_settings(args)
    configure_logging(settings.log)
    if not args.json:  # stdout stays one JSON document with --json
        from blockmon.cli.target import say_target

        say_target(args, settings, lambda line: print(f"blockmon: {line}", flush=True))
    return asyncio.run(_health(settings, as_json=args.json))


async def _health(settings: Settings, *, as_json: bool) -> int:
    import json

    from blockmon.containers import ApplicationContainer
    from blockmon.health.model import Status
    from blockmon.health.render import table
    from blockmon.lifespan import Lifespan

    container = ApplicationContainer()
    container.config.from_dict(settings.model_dump())
    async with Lifespan(container):
        checker = await container.monitoring.health()
        report = await checker.report(max_age=0)
    if as_json:
        print(json.dumps(report.body(details=True), indent=2))
    else:
        print(table(report))
    return 1 if report.status == Status.FAIL else 0
