"""Serving the monitoring app with uvicorn on a socket we bind ourselves, so a port in
use is one clear error instead of uvicorn exiting the process; connections are bounded
in number and time (`blockmon.monitoring.connections`)."""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from blockmon.config.settings import MonitoringSettings
from blockmon.errors import BlockmonError
from blockmon.monitoring.app import PATHS
from blockmon.monitoring.connections import ConnectionGuard, GuardedH11Protocol

FD_RESERVE = 128  # descriptors kept for pools, logs and the listening socket


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which would kill the
    process before the container closes its pools; here the signal only stops serving."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


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
) -> None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM (uvicorn's graceful shutdown)."""
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
    )
    server = _Server(config)
    if on_ready is not None:
        on_ready(urls(sock))
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
