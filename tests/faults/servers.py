"""Throwaway PostgreSQL and Redis servers on free loopback ports, for injecting faults.

They keep their port across restarts (a client reconnects to the same address) and
remove their data directory on `cleanup`. PostgreSQL refuses to run as root, so its
commands run as the ``postgres`` OS user when we are root. Settings favour speed
over durability (fsync off): these servers exist for one test run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

PG_BIN = Path(os.environ.get("BLOCKMON_PG_BIN", "/usr/lib/postgresql/15/bin"))
_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout}s"
                ) from None
            time.sleep(0.05)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class _Server:
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        raise NotImplementedError


class ThrowawayPostgres(_Server):
    """A PostgreSQL 15 cluster in a temp directory, trust auth, user ``postgres``."""

    def __init__(self, os_user: str = "postgres") -> None:
        self.os_user = os_user if os.geteuid() == 0 else None
        self.home = Path(tempfile.mkdtemp(prefix="blockmon-fault-pg-"))
        self.data = self.home / "data"
        self.port = free_port()
        if self.os_user is not None:
            shutil.chown(self.home, self.os_user)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        prefix = ["runuser", "-u", self.os_user, "--"] if self.os_user else []
        subprocess.run(
            [*prefix, *argv], check=True, capture_output=True, timeout=timeout, cwd=self.home
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if self.running():
            return
        # fsync=off survives a killed server (the OS still has the pages), not a lost host.
        # synchronous_commit stays on: off would lose acknowledged commits on a SIGKILL.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.home} "
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=300 -c shared_buffers=32MB"
        )
        self._run(str(PG_BIN / "pg_ctl"), "start", "-D", str(self.data), "-w",
                  "-t", str(int(_START_TIMEOUT)), "-l", str(self.home / "log"), "-o", options,
                  timeout=_START_TIMEOUT + 5)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop; ``fast`` ends every session (what a restart does), ``immediate`` is a crash-stop."""
        if self.pid() is None:
            return
        self._run(str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w",
                  "-t", str(int(_START_TIMEOUT)), timeout=_START_TIMEOUT + 5)  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, like a crashed host; `start` recovers."""
        pid = self.pid()
        if pid is None:
            return
        for victim in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.02)
        with contextlib.suppress(FileNotFoundError):
            (self.data / "postmaster.pid").unlink()

    def pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def running(self) -> bool:
        return self.pid() is not None

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)


class ThrowawayRedis(_Server):
    """redis-server with persistence off, on a free port, as the current user."""

    def __init__(self, binary: str = "redis-server") -> None:
        self.binary = binary
        self.home = Path(tempfile.mkdtemp(prefix="blockmon-fault-redis-"))
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.home), "--logfile", str(self.home / "log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_port(self.port, _START_TIMEOUT)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(sig)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)
