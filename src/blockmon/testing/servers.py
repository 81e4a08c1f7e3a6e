"""Throwaway local deployments for tests: Redis with Sentinel, Redis Cluster, a
PostgreSQL primary with a streaming replica, and PgBouncer.

Every server listens on a free loopback port, keeps its data in a temporary folder,
and is killed by `stop`. PostgreSQL and PgBouncer refuse to run as root, so they run
as the ``postgres`` OS user when the tests run as root. Every wait has a deadline.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from blockmon.errors import ServerStartError

PG_BIN = Path(os.environ.get("BLOCKMON_PG_BIN", "/usr/lib/postgresql/15/bin"))
_PG_USER = "postgres"


def free_port(bus_offset: int | None = None) -> int:
    """A loopback port nobody listens on right now (and, with ``bus_offset``, also
    port + offset free and below 65536, as a Redis Cluster node needs for its bus)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if bus_offset is None:
            return port
        if port + bus_offset < 65536 and _bindable(port + bus_offset):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
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
    return list(args) if os.geteuid() != 0 else ["runuser", "-u", _PG_USER, "--", *args]


def _run(args: Sequence[str], timeout: float = 60.0) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ServerStartError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")


def _tempdir(prefix: str, pg_owned: bool = False) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if pg_owned and os.geteuid() == 0:
        shutil.chown(path, _PG_USER, _PG_USER)
    return path


# --- Redis --------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """One redis-server (data node or sentinel) in its own folder."""

    port: int
    home: Path
    args: list[str]
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        log = open(self.home / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            ["redis-server", *self.args], cwd=self.home, stdout=log, stderr=log
        )
        log.close()
        try:
            wait_for(f"redis on port {self.port}", lambda: bool(self.client().ping()), 15)
        except BaseException:
            self.kill()
            raise
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port, password=self.password, socket_timeout=2, socket_connect_timeout=2
        )

    def kill(self) -> None:
        """SIGKILL: the server dies without a goodbye, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def redis_node(
    home: Path, *extra: str, password: str | None = None, bus_offset: int | None = None
) -> RedisServer:
    port = free_port(bus_offset)
    args = [
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(home), "--logfile", "", *extra,
    ]  # fmt: skip
    if password:
        args += ["--requirepass", password, "--masterauth", password]
    return RedisServer(port, home, args, password)


@dataclass
class SentinelDeployment:
    """A master, one replica and three sentinels (quorum 2) watching ``service_name``."""

    home: Path
    service_name: str = "blockmon"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    sentinel_password: str = field(default_factory=lambda: secrets.token_hex(12))
    master: RedisServer | None = None
    replica: RedisServer | None = None
    sentinels: list[RedisServer] = field(default_factory=list)

    @property
    def sentinel_addresses(self) -> list[str]:
        return [s.address for s in self.sentinels]

    def start(self) -> SentinelDeployment:
        """Start every server and wait until the topology is settled (all stopped on failure)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.master = redis_node(self.home, password=self.password).start()
        self.replica = redis_node(
            self.home, "--replicaof", "127.0.0.1", str(self.master.port), password=self.password
        ).start()
        wait_for("the replica to sync", lambda: _linked(self.replica), 20)
        for index in range(3):
            port = free_port()
            conf = self.home / f"sentinel-{index}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.home}\n"
                f"requirepass {self.sentinel_password}\n"
                f"sentinel monitor {self.service_name} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel auth-pass {self.service_name} {self.password}\n"
                f"sentinel down-after-milliseconds {self.service_name} 1000\n"
                f"sentinel failover-timeout {self.service_name} 5000\n"
            )
            node = RedisServer(port, self.home, [str(conf), "--sentinel"], self.sentinel_password)
            self.sentinels.append(node.start())
        wait_for("the sentinels to see each other and the replica", self._settled, 30)

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

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            if node is not None:
                node.kill()
        shutil.rmtree(self.home, ignore_errors=True)


def _linked(replica: RedisServer | None) -> bool:
    assert replica is not None
    return replica.client().info("replication").get("master_link_status") == "up"


@dataclass
class ClusterDeployment:
    """Three masters with one replica each, made by ``redis-cli --cluster create``."""

    home: Path
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]

    def start(self) -> ClusterDeployment:
        """Start every server and wait until the topology is settled (all stopped on failure)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for _ in range(6):
            node = redis_node(self.home, "--cluster-enabled", "yes", bus_offset=10000)
            node.args += [
                "--cluster-config-file", f"nodes-{node.port}.conf",
                "--cluster-node-timeout", "1000",
            ]  # fmt: skip
            self.nodes.append(node.start())
        _run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *self.addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            timeout=60,
        )
        wait_for("the cluster to be ok with replicas in sync", self._settled, 30)

    def _settled(self) -> bool:
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            client = node.client()
            if client.cluster("info").get("cluster_state") != "ok":
                return False
            info = client.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def wait_ok(self, timeout: float = 30.0) -> None:
        wait_for("the cluster to be ok", self._settled, timeout)

    def master_of(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot now."""
        alive = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
        client: Any = alive[0].client()
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(primary[1])
                return next(n for n in self.nodes if n.port == port)
        raise ServerStartError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.home, ignore_errors=True)


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A PostgreSQL cluster (trust auth on loopback) in a temporary data directory."""

    data: Path
    port: int = field(default_factory=free_port)
    running: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> PostgresServer:
        _run(
            _as_pg_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            )
        )
        self._configure()
        return self

    def _configure(self) -> None:
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.data}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nshared_buffers = '16MB'\n"
                "max_connections = 60\nwal_level = replica\nmax_wal_senders = 4\n"
            )

    def start(self) -> PostgresServer:
        log = self.data / "server.log"
        _run(
            _as_pg_user(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            timeout=90,
        )
        self.running = True
        return self

    def stop(self, mode: str = "immediate") -> None:
        if self.running:
            _run(
                _as_pg_user(
                    [
                        str(PG_BIN / "pg_ctl"),
                        "-D",
                        str(self.data),
                        "-m",
                        mode,
                        "-w",
                        "-t",
                        "60",
                        "stop",
                    ]
                ),
                timeout=90,
            )
            self.running = False

    def replica(self) -> PostgresServer:
        """A streaming replica of this (running) server: pg_basebackup -R, then start."""
        standby = PostgresServer(_tempdir("bm-pg-replica-", pg_owned=True))
        _run(
            _as_pg_user(
                [
                    str(PG_BIN / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(standby.data),
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                ]
            ),
            timeout=120,
        )
        standby._configure()  # its own port, after the primary's settings
        return standby.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


def postgres_server() -> PostgresServer:
    return PostgresServer(_tempdir("bm-pg-", pg_owned=True)).init().start()


@dataclass
class PgBouncer:
    """PgBouncer in transaction pooling mode in front of ``backend_port``."""

    backend_port: int
    home: Path = field(default_factory=lambda: _tempdir("bm-pgbouncer-", pg_owned=True))
    port: int = field(default_factory=free_port)
    pool_size: int = 10
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgBouncer:
        users = self.home / "users.txt"
        users.write_text('"postgres" ""\n')
        conf = self.home / "pgbouncer.ini"
        conf.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.backend_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\npool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 500\n"
            f"logfile = {self.home / 'pgbouncer.log'}\n"
        )
        if os.geteuid() == 0:
            for path in (users, conf):
                shutil.chown(path, _PG_USER, _PG_USER)
        self.process = subprocess.Popen(
            _as_pg_user(["pgbouncer", str(conf)]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"pgbouncer on port {self.port}", self._listening, 20)
        except BaseException:
            self.stop()
            raise
        return self

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerStartError(f"pgbouncer exited; see {self.home / 'pgbouncer.log'}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.home, ignore_errors=True)
