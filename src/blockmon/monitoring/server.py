"""Serving the monitoring app with uvicorn on a socket we bind ourselves, so a port in
use is one clear error instead of uvicorn exiting the process; connections are bounded
in number and time (`blockmon.monitoring.connections`)."""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from blockmon.config.log import get_logger
from blockmon.config.settings import MonitoringSettings
from blockmon.errors import BlockmonError
from blockmon.monitoring.app import PATHS
from blockmon.monitoring.connections import ConnectionGuard, GuardedH11Protocol
from blockmon.monitoring.drain import SIGNALS, SignalDrain
from blockmon.monitoring.readiness import Readiness

_log = get_logger("blockmon.shutdown")

FD_RESERVE = 128  # descriptors kept for pools, logs and the listening socket


class _Server(uvicorn.Server):
    """uvicorn, draining on SIGINT/SIGTERM (`SignalDrain`): readiness fails at once, serving
    goes on for ``delay`` seconds, then uvicorn's graceful shutdown (stop accepting, wait for
    requests in flight up to ``timeout_graceful_shutdown``). uvicorn's own handler would stop
    accepting at once, and re-raise the signal after, killing the process before the
    container closes its pools; here the signal only stops serving."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness, delay: float) -> None:
        super().__init__(config)
        self._readiness = readiness
        self._delay = delay
        self.drain: SignalDrain | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.drain = drain = SignalDrain(self._readiness, self._delay, self._stop)
        previous = {sig: signal.signal(sig, drain.handle) for sig in SIGNALS}
        try:
            yield
        finally:
            drain.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, signum: int, hurry: bool) -> None:
        self.should_exit = True
        if hurry:
            self.force_exit = True  # uvicorn then stops waiting for connections

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        _log.info(
            "shutdown: stopped accepting; waiting for requests in flight",
            in_flight=len(self.server_state.tasks),
            timeout=self.config.timeout_graceful_shutdown,
        )
        await super().shutdown(sockets)
        first = self.drain.started if self.drain is not None else None
        _log.info(
            "shutdown: server stopped",
            drained_in=round(time.monotonic() - started, 3),
            since_signal=None if first is None else round(time.monotonic() - first, 3),
        )

    def stopped_by(self) -> int | None:
        """The signal that stopped the server, if one did."""
        return None if self.drain is None else self.drain.first


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; BlockmonError (one line) if impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise BlockmonError(f"monitoring.http_host: cannot resolve {host!r}: {error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise BlockmonError(f"monitoring: cannot listen on {host}:{port}: {reason}") from None
    return sock


def urls(sock: socket.socket) -> list[str]:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return [f"http://{shown}:{port}{path}" for path in ("/", *PATHS)]  # "/": the status page


def connection_limit(configured: int) -> int:
    """``monitoring.http_max_connections``, lowered to fit the process's descriptor limit
    (past it, accept() fails and nothing answers, /livez included)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(8, min(configured, soft - FD_RESERVE))


async def serve(
    app: ASGIApp,
    sock: socket.socket,
    *,
    on_ready: Callable[[list[str]], None] | None = None,
    settings: MonitoringSettings | None = None,
    readiness: Readiness | None = None,
) -> int | None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM, draining (`_Server`); the signal that
    stopped it, if one did. ``readiness`` is what the app's /readyz reads."""
    limits = settings or MonitoringSettings()
    guard = ConnectionGuard(
        limit=connection_limit(limits.http_max_connections),
        header_timeout=limits.http_header_timeout,
    )
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        http=GuardedH11Protocol.bound(guard),
        ws="none",  # an upgraded connection would leave the guard's count
        timeout_keep_alive=limits.http_keepalive_timeout,
        timeout_graceful_shutdown=limits.shutdown_timeout,
    )
    server = _Server(config, readiness or Readiness(), limits.shutdown_delay)
    if on_ready is not None:
        on_ready(urls(sock))
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
    return server.stopped_by()
