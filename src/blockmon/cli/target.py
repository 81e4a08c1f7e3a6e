"""What a command talks to, printed before it does: the configuration file it read and
the servers (``user:***@host:port/database``; a password is never printed)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from urllib.parse import urlsplit

from blockmon.config.file import config_path
from blockmon.config.secrets import redact
from blockmon.config.settings import PostgresSettings, RedisSettings, Settings


def config_line(args: argparse.Namespace) -> str:
    """``config: /abs/config.yml`` (or that none was found and defaults apply)."""
    path = config_path(args.config, os.environ)
    if path is None:
        return "config: none found (defaults and environment)"
    return f"config: {path.resolve()}"


def postgres_address(settings: PostgresSettings) -> str:
    from blockmon.postgres.engine import engine_url

    url = engine_url(settings)
    hosts = url.query.get("host")
    where = ",".join(hosts) if isinstance(hosts, tuple) else (hosts or "")
    if not where:
        where = f"{url.host or 'localhost'}:{url.port or 5432}"
    user = f"{url.username}{':***' if url.password else ''}@" if url.username else ""
    return redact(f"{user}{where}/{url.database or ''}")


def redis_address(settings: RedisSettings) -> str:
    if settings.mode == "sentinel":
        return f"sentinel {settings.service_name} via {','.join(settings.sentinels)}"
    if settings.mode == "cluster":
        return f"cluster via {','.join(settings.cluster_nodes)}"
    if settings.url is not None:
        parts = urlsplit(settings.url.get_secret_value())
        if parts.scheme == "unix":
            return redact(f"unix:{parts.path}")
        user = parts.username or ""
        secret = ":***" if parts.password else ""
        at = f"{user}{secret}@" if user or secret else ""
        db = parts.path.lstrip("/") or "0"
        return redact(f"{at}{parts.hostname}:{parts.port or 6379}/{db}")
    secret = ":***" if settings.password else ""
    at = f"{settings.username or ''}{secret}@" if settings.username or secret else ""
    return redact(f"{at}{settings.host}:{settings.port}/{settings.db}")


def say_target(args: argparse.Namespace, settings: Settings, say: Callable[[str], None]) -> None:
    """Three lines: the config file, PostgreSQL, Redis."""
    say(config_line(args))
    say(f"postgres: {postgres_address(settings.postgres)}")
    say(f"redis: {redis_address(settings.redis)}")
