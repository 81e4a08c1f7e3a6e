"""What a command talks to, printed before it does: the configuration file it read and
the servers (``user:***@host:port/database``; a password is never printed). The servers'
module (SQLAlchemy, redis-py) is imported only to print them: ``config show`` needs neither."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from blockmon.config.file import config_path
from blockmon.config.settings import Settings


def config_line(args: argparse.Namespace) -> str:
    """``config: /abs/config.yml`` (or that none was found and defaults apply)."""
    path = config_path(args.config, os.environ)
    if path is None:
        return "config: none found (defaults and environment)"
    return f"config: {path.resolve()}"


def say_target(args: argparse.Namespace, settings: Settings, say: Callable[[str], None]) -> None:
    """Three lines: the config file, PostgreSQL, Redis."""
    from blockmon.provisioning.servers import postgres_target, redis_target

    say(config_line(args))
    say(f"postgres: {postgres_target(settings.postgres)}")
    say(f"redis: {redis_target(settings.redis)}")
