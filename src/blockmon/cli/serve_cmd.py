"""``blockmon serve``: the monitoring HTTP server (/livez /readyz /health /metrics)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blockmon.cli.signals import StopOnSignal


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {port}")
    return port


def add_server_options(parser: Any) -> None:
    from blockmon.cli.arguments import not_empty

    parser.add_argument(
        "--host", type=not_empty, help="address to listen on (default: monitoring.http_host)"
    )
    parser.add_argument(
        "--port", type=port_number, help="port to listen on (default: monitoring.http_port)"
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve", help="serve health and metrics over HTTP until Ctrl-C", parents=[common]
    )
    add_server_options(serve)
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from blockmon.cli.settings import command_settings
    from blockmon.cli.signals import StopOnSignal
    from blockmon.config.log import configure_logging

    with StopOnSignal() as stop:
        settings = command_settings(args)
        configure_logging(settings.log)
        host = args.host or settings.monitoring.http_host
        port = args.port or settings.monitoring.http_port
        return stop.run(serve_container(settings.model_dump(), host, port, stop))


def say_urls(urls: list[str]) -> None:
    print("blockmon: monitoring on " + " ".join(urls), flush=True)


def say_closed(closing: float) -> None:
    """The drain's last step, logged: the Resources closed ``closing`` (monotonic) on."""
    import time

    from blockmon.config.log import get_logger

    get_logger("blockmon.shutdown").info(
        "shutdown: the container's Resources are closed",
        closed_in=round(time.monotonic() - closing, 3),
    )


async def serve_container(
    config: dict[str, Any], host: str, port: int, stop: StopOnSignal | None = None
) -> int:
    """Start a container, serve its monitoring app until Ctrl-C (draining), shut it down."""
    import time

    from blockmon.containers import ApplicationContainer
    from blockmon.lifespan import Lifespan
    from blockmon.monitoring.server import bind, serve

    sock = bind(host, port)
    container = ApplicationContainer()
    container.config.from_dict(config)
    async with Lifespan(container):
        stopped_by = await serve(
            await container.monitoring.app(),
            sock,
            on_ready=say_urls,
            settings=container.settings().monitoring,
            readiness=container.monitoring.readiness(),
        )
        if stop is not None:
            stop.stopping(stopped_by)
        closing = time.monotonic()
    if stopped_by is not None:
        say_closed(closing)
    return 0
