"""Throwaway servers for fault tests: a PostgreSQL of our own on a free loopback port,
which a test may stop, restart and kill without disturbing the shared one.

    with ThrowawayPostgres() as pg:      # initdb + start; stop + delete at exit
        url = pg.url                     # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.stop(); pg.start(); pg.restart()

PostgreSQL refuses to run as root, so when we are root the server runs as the
``postgres`` OS user; its data directory lives in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

PG_BIN = Path(os.environ.get("BLOCKMON_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _user_kwargs() -> dict[str, Any]:
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp dir (trust auth, user ``postgres``)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._tmp = Path(tempfile.mkdtemp(prefix="blockmon-pg-"))
        self.datadir = self._tmp / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self._tmp / "server.log"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self._tmp, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
            **_user_kwargs(),
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self._tmp),
                    "-c",
                    f"listen_addresses={self.host}",
                    "-c",
                    "fsync=off",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
                **_user_kwargs(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self._log.read_text()[-2000:]}")
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                timeout=10,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"postgres did not accept connections within {START_TIMEOUT} s")

    def stop(self, *, immediate: bool = False) -> None:
        """Fast shutdown (SIGINT: disconnects clients); ``immediate`` uses SIGQUIT."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop(immediate=True)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.close()
