"""What the doctor read: the deployment's shape and each server's limits, as plain data
so that the rules are arithmetic on them (and the JSON output is these fields)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deployment:
    """How many processes run blockmon's pools: workers per replica x replicas."""

    workers: int
    replicas: int
    workers_from: str  # "--workers", "multiprocess_dir (N live)", "default"
    db_cores: int | None  # the database host's cores, for HikariCP's sizing formula
    db_cores_from: str

    @property
    def processes(self) -> int:
        return self.workers * self.replicas


@dataclass(frozen=True)
class PostgresFacts:
    max_connections: int
    superuser_reserved: int
    reserved: int  # reserved_connections (PostgreSQL 16+), else 0
    role: str
    role_superuser: bool
    role_limit: int  # pg_roles.rolconnlimit, -1: none
    database_limit: int  # pg_database.datconnlimit, -1: none
    idle_in_transaction_ms: int  # 0: off
    statement_timeout_ms: int  # the role's/database's/server's default; 0: off
    server_ssl: bool
    ssl_in_use: bool
    server_port: int | None  # inet_server_port(): None over a Unix socket
    version: str
    sessions: dict[str, int]  # client sessions by application_name (the doctor's left out)
    role_sessions: int  # sessions of the same role (the doctor's left out)


@dataclass(frozen=True)
class BouncerFacts:
    pool_mode: str
    default_pool_size: int
    reserve_pool_size: int
    max_client_conn: int
    max_db_connections: int  # 0: no limit
    max_prepared_statements: int  # 0: PgBouncer does not track prepared statements
    server_connections: int  # server connections open now, every pool


@dataclass(frozen=True)
class RedisFacts:
    maxclients: int
    connected_clients: int
    ours: int  # connections named redis.client_name
    maxmemory: int
    maxmemory_policy: str
    timeout: int | None  # seconds an idle client stays connected (0: forever); None: unreadable
    save: str | None  # RDB snapshot rules ("" off); None: unreadable
    aof: bool
    role: str


@dataclass
class Facts:
    deployment: Deployment
    postgres: PostgresFacts | None = None
    postgres_error: str | None = None
    bouncer: BouncerFacts | None = None
    bouncer_error: str | None = None  # why the admin console could not be read
    proxy_port: int | None = None  # the port the URL names, when the server listens elsewhere
    redis: RedisFacts | None = None
    redis_error: str | None = None
    notes: list[str] = field(default_factory=list)
