"""Issue 12, "Found" 3 and the redirect of 8: ``blockmon serve`` closes connections
that never send a request, send one slowly or sit idle after a response; beyond
``monitoring.http_max_connections`` it closes the longest idle first, so ``/livez``
still answers; it logs once when shedding starts and once when it stops. ``/health/``
redirects relative to itself, never to the Host header's host."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from tests.monitoring.support import WAIT, merged, serving


def _connect(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    if first:
        sock.sendall(first)
    return sock


def _closed_by_server(sock: socket.socket, timeout: float = 0.0) -> bool:
    """True once the server has closed ``sock`` (EOF or reset), reading what it sent."""
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(65536):
            del chunk
    except (TimeoutError, BlockingIOError):
        return False
    except ConnectionResetError:
        return True
    return True


def _wait_all_closed(socks: list[socket.socket], drip: list[socket.socket]) -> bool:
    deadline = time.monotonic() + WAIT
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        for sock in drip:  # slowloris: a header byte now and then keeps nothing alive
            with contextlib.suppress(OSError):
                sock.send(b"X")
        pending = [s for s in pending if not _closed_by_server(s, 0.05)]
    return not pending


def test_never_sent_half_sent_and_idle_connections_are_closed(
    blockmon_config: dict[str, Any], tmp_path: Path
) -> None:
    config = merged(
        blockmon_config, monitoring={"http_header_timeout": 1, "http_keepalive_timeout": 1}
    )
    logs: list[str] = []
    with serving(tmp_path, config, logs) as port:
        never = [_connect(port) for _ in range(10)]
        half = [_connect(port, b"GET /livez HTTP/1.1\r\nHost: x\r\n") for _ in range(10)]
        idle = []
        for _ in range(10):
            sock = _connect(port, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            idle.append(sock)
        try:
            assert _wait_all_closed(never + half + idle, drip=half)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
                assert client.get("/livez").status_code == 200
        finally:
            for sock in never + half + idle:
                sock.close()


def test_over_the_cap_the_longest_idle_go_first_and_livez_answers(
    blockmon_config: dict[str, Any], tmp_path: Path
) -> None:
    limit = 40
    config = merged(
        blockmon_config,
        monitoring={"http_max_connections": limit, "http_header_timeout": 600},
    )
    logs: list[str] = []
    with serving(tmp_path, config, logs) as port:
        held = []
        try:
            for i in range(200):
                held.append(_connect(port, b"GET /li" if i % 2 else b""))
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
                assert client.get("/livez").json() == {"status": "pass"}
            # The oldest were shed; the newest (connected last) are still open.
            assert _wait_all_closed(held[:100], drip=[])
            assert not any(_closed_by_server(s) for s in held[-(limit // 2) :])
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not any("no longer shedding" in x for x in logs):
            time.sleep(0.1)  # while serving: the server sees the closes, then says so
    started = [line for line in logs if "too many connections" in line]
    stopped = [line for line in logs if "no longer shedding" in line]
    assert len(started) == 1, logs
    assert len(stopped) == 1, logs
    assert f'"limit": {limit}' in started[0]


def test_trailing_slash_redirect_is_relative(
    blockmon_config: dict[str, Any], tmp_path: Path
) -> None:
    logs: list[str] = []
    with serving(tmp_path, blockmon_config, logs) as port:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=WAIT) as client:
            for path in ("/health", "/livez", "/readyz", "/metrics"):
                response = client.get(f"{path}/?x=1", headers={"Host": "evil.example"})
                assert response.status_code == 308
                assert response.headers["location"] == f"..{path}?x=1"
                assert "evil" not in response.text
            followed = client.get("/livez/", follow_redirects=True)
            assert followed.json() == {"status": "pass"}
            assert str(followed.url) == f"{base}/livez"
