"""``blockmon up``: the main job. Finds (or starts) PostgreSQL and Redis, makes sure
the database exists, brings the schema to head, and reports the health of both."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blockmon.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    up = sub.add_parser(
        "up",
        help="connect to (or start) PostgreSQL and Redis and report their health",
        parents=[common],
    )
    up.add_argument(
        "--no-embedded",
        action="store_true",
        help="fail instead of starting embedded servers when none is reachable",
    )
    up.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace) -> int:
    from blockmon.config_file import load_settings
    from blockmon.log import configure_logging
    from blockmon.loop import run

    settings = load_settings(args.config)
    configure_logging(settings.log)
    return run(_up(settings, embedded=not args.no_embedded))


def say(message: str) -> None:
    print(f"blockmon: {message}", flush=True)


async def _up(settings: Settings, *, embedded: bool) -> int:
    from blockmon.containers import ApplicationContainer
    from blockmon.embedded import EmbeddedServers
    from blockmon.lifespan import Lifespan
    from blockmon.migrate import upgrade
    from blockmon.servers import ensure_database, resolve_servers

    servers = EmbeddedServers()
    try:
        settings = await resolve_servers(
            settings, servers=servers if embedded else None, notify=say
        )
        if await ensure_database(settings.postgres):
            say(f"created database {settings.postgres.database!r}")
        container = ApplicationContainer()
        container.config.from_dict(settings.model_dump())
        async with Lifespan(container):
            status = await upgrade(container)
            say(f"schema: at head ({status.current})")
            return await _report(container)
    finally:
        servers.stop()


async def _report(container: Any) -> int:
    from sqlalchemy import text

    engine = await container.postgres.engine()
    client = await container.redis.client()
    async with engine.connect() as conn:
        version = (await conn.execute(text("SHOW server_version"))).scalar()
    info = await client.info("server")
    say(f"postgres: pass (PostgreSQL {version})")
    say(f"redis: pass (Redis {info.get('redis_version')})")
    return 0
