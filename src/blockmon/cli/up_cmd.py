"""``blockmon up``: the main job. Finds (or starts) PostgreSQL and Redis, makes sure
the database exists, brings the schema to head, and reports the health of both."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from blockmon.cli import serve_cmd
from blockmon.errors import UsageError

if TYPE_CHECKING:
    from blockmon.cli.signals import StopOnSignal
    from blockmon.config.settings import Settings
    from blockmon.monitoring.mount import AppFactory


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
    up.add_argument(
        "--serve",
        action="store_true",
        help="then keep serving health and metrics over HTTP until Ctrl-C",
    )
    serve_cmd.add_server_options(up)
    up.add_argument(
        "--app",
        metavar="MODULE:FACTORY",
        type=_app_factory,
        help="with --serve, also serve FACTORY(container)'s ASGI app at / (docs/main-job.md)",
    )
    up.set_defaults(handler=run_up)


def _app_factory(spec: str) -> AppFactory:
    from blockmon.monitoring.mount import load_factory

    return load_factory(spec)


def run_up(args: argparse.Namespace) -> int:
    from blockmon.cli.settings import command_settings
    from blockmon.cli.signals import StopOnSignal
    from blockmon.cli.target import config_line
    from blockmon.config.log import configure_logging

    if args.app is not None and not args.serve:
        raise UsageError("up: argument --app: needs --serve")
    with StopOnSignal() as stop:
        settings = command_settings(args)
        configure_logging(settings.log)
        serve_at = None
        if args.serve:
            serve_at = (
                args.host or settings.monitoring.http_host,
                args.port or settings.monitoring.http_port,
            )
        say(config_line(args))
        main = _up(
            settings, embedded=not args.no_embedded, serve_at=serve_at, app=args.app, stop=stop
        )
        return stop.run(main)


def say(message: str) -> None:
    print(f"blockmon: {message}", flush=True)


async def _up(
    settings: Settings,
    *,
    embedded: bool,
    serve_at: tuple[str, int] | None = None,
    app: AppFactory | None = None,
    stop: StopOnSignal | None = None,
) -> int:
    import time

    from blockmon.containers import ApplicationContainer
    from blockmon.lifespan import Lifespan
    from blockmon.monitoring.server import bind
    from blockmon.provisioning.embedded import EmbeddedServers
    from blockmon.provisioning.servers import (
        ensure_database,
        postgres_target,
        redis_target,
        resolve_servers,
    )

    servers = EmbeddedServers()
    try:
        settings = await resolve_servers(
            settings, servers=servers if embedded else None, notify=say
        )
        say(f"postgres: {postgres_target(settings.postgres)}")
        say(f"redis: {redis_target(settings.redis)}")
        created = await ensure_database(settings.postgres) if settings.postgres.enabled else None
        if created is not None:
            say(f"created database {created!r}")
        container = ApplicationContainer()
        container.config.from_dict(settings.model_dump())
        sock = bind(*serve_at) if serve_at else None
        stopped_by = None
        try:
            async with Lifespan(container):
                await _migrate(container, settings)
                code = await _report(container)
                if sock is not None:
                    stopped_by = await _serve(container, sock, app)
                    if stop is not None:
                        stop.stopping(stopped_by)
                closing = time.monotonic()
            if stopped_by is not None:
                serve_cmd.say_closed(closing)
            return code
        finally:
            if sock is not None:
                sock.close()  # a no-op when the server already closed it
    finally:
        servers.stop()


async def _migrate(container: Any, settings: Settings) -> None:
    """Every chain the settings name to head: blockmon's alerting tables, the application's."""
    from blockmon.migrations.api import configured_chains, upgrade
    from blockmon.migrations.version_tables import version_table

    chains = configured_chains(settings.migrations) if settings.postgres.enabled else []
    for cfg in chains:
        status = await upgrade(container, config=cfg)
        say(f"schema: at head ({status.current}, in {version_table(cfg)})")
    if not chains:
        say("schema: no migration chain configured (migrations.heads_from, alerting_tables)")


async def _serve(container: Any, sock: Any, app: AppFactory | None) -> int | None:
    """The monitoring app alone, or with the application mounted behind it, until a
    signal (returned) has drained the server."""
    from blockmon.monitoring.mount import combine
    from blockmon.monitoring.server import serve

    monitoring = await container.monitoring.app()
    limits = container.settings().monitoring
    readiness = container.monitoring.readiness()
    if app is None:
        return await serve(
            monitoring, sock, on_ready=serve_cmd.say_urls, settings=limits, readiness=readiness
        )
    combined = combine(monitoring, await app.build(container))

    def ready(urls: list[str]) -> None:
        serve_cmd.say_urls(urls)
        root = urls[0].rsplit("/", 1)[0] + "/"
        say(f"application {app.spec} on {root}")

    return await serve(combined, sock, on_ready=ready, settings=limits, readiness=readiness)


async def _report(container: Any) -> int:
    """One line per component from the health checker; 1 if the report fails."""
    from blockmon.health.model import Status
    from blockmon.health.render import summary

    checker = await container.monitoring.health()
    report = await checker.report(max_age=0)
    for result in report.results:
        say(f"{result.component}: {result.status} ({summary(result)})")
    return 1 if report.status == Status.FAIL else 0
