"""The rules: each compares what blockmon's settings x processes will ask for with what
a server allows, and says so with the numbers and the reason (``why``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from blockmon.cli.doctor.facts import Facts, PostgresFacts, RedisFacts
from blockmon.config.settings import PostgresSettings, RedisSettings, Settings

Level = Literal["info", "warn", "error"]
LEVELS: tuple[Level, ...] = ("error", "warn", "info")
NEAR = 0.8  # a demand above 80% of a limit leaves no room for a deploy's overlap
EXIT = {"error": 2, "warn": 1, "info": 0}


@dataclass(frozen=True)
class Finding:
    level: Level
    rule: str
    message: str
    why: str
    load: float = 0.0  # demand / limit, to say which limit breaks first


def check(settings: Settings, facts: Facts) -> list[Finding]:
    """Every finding, the one that breaks first at the top."""
    found = [*_postgres(settings.postgres, facts), *_redis(settings.redis, facts)]
    return sorted(found, key=lambda f: (LEVELS.index(f.level), -f.load))


def exit_code(findings: list[Finding]) -> int:
    return max((EXIT[f.level] for f in findings), default=0)


def _against(rule: str, demand: int, limit: int, what: str, room: str, why: str) -> Finding | None:
    """``demand`` against ``limit``: error above it, warn above 80% of it."""
    load = demand / limit if limit > 0 else float("inf")
    if load > 1:
        return Finding("error", rule, f"{what} = {demand} > {room} = {limit}", why, load)
    if load > NEAR:
        return Finding(
            "warn", rule, f"{what} = {demand} is {load:.0%} of {room} = {limit}", why, load
        )
    return Finding("info", rule, f"{what} = {demand}, {room} = {limit} ({load:.0%})", why, load)


def _postgres(pg: PostgresSettings, facts: Facts) -> Iterator[Finding]:
    if facts.postgres is None:
        yield Finding(
            "error",
            "postgres.reachable",
            f"cannot read PostgreSQL: {facts.postgres_error}",
            "every rule below needs the server's own numbers",
        )
        return
    server, processes = facts.postgres, facts.deployment.processes
    per_process = pg.pool_size + pg.max_overflow
    demand = processes * per_process
    shape = (
        f"{facts.deployment.workers} workers x {facts.deployment.replicas} replicas x "
        f"(pool_size {pg.pool_size} + max_overflow {pg.max_overflow})"
    )
    bouncer = facts.bouncer
    yield from _bouncer(pg, facts, shape, demand)
    if bouncer is not None and bouncer.pool_mode != "session":
        # PostgreSQL sees PgBouncer's server pool, not the clients.
        server_demand = bouncer.default_pool_size + bouncer.reserve_pool_size
        server_shape = (
            f"PgBouncer's server pool (default_pool_size {bouncer.default_pool_size} + "
            f"reserve_pool_size {bouncer.reserve_pool_size})"
        )
        busy_others = max(0, sum(server.sessions.values()) - bouncer.server_connections)
    else:
        server_demand, server_shape = demand, shape
        busy_others = sum(n for name, n in server.sessions.items() if name != pg.application_name)
    reserved = server.superuser_reserved + server.reserved
    available = server.max_connections - reserved - busy_others
    found = _against(
        "postgres.connections",
        server_demand,
        available,
        server_shape,
        f"available connections (max_connections {server.max_connections} - reserved "
        f"{reserved} - {busy_others} held by other applications)",
        "every process opens up to pool_size + max_overflow connections; past "
        "max_connections the server refuses new ones (FATAL: sorry, too many clients "
        "already) and pool_timeout errors follow",
    )
    if found is not None:
        yield found
    if server.role_limit >= 0 and not server.role_superuser:  # superusers ignore it
        held = server.role_sessions - server.sessions.get(pg.application_name, 0)
        limit = _against(
            "postgres.role_limit",
            server_demand + max(0, held),
            server.role_limit,
            f"{server_shape} + {max(0, held)} other sessions of role {server.role}",
            f"the role's connection limit (rolconnlimit of {server.role})",
            "ALTER ROLE ... CONNECTION LIMIT caps the role's sessions; past it: FATAL: too "
            "many connections for role",
        )
        if limit is not None:
            yield limit
    if server.database_limit >= 0:
        limit = _against(
            "postgres.database_limit",
            server_demand,
            server.database_limit,
            server_shape,
            "the database's connection limit (datconnlimit)",
            "ALTER DATABASE ... CONNECTION LIMIT caps the database's sessions",
        )
        if limit is not None:
            yield limit
    yield _sizing(facts, per_process, demand)
    yield from _timeouts(pg, server)
    yield _tls(pg, server)


def _sizing(facts: Facts, per_process: int, demand: int) -> Finding:
    """HikariCP's guidance: connections = (cores x 2) + effective spindles, for the whole
    database, so a few connections per core; more only queue inside the server."""
    cores, source = facts.deployment.db_cores, facts.deployment.db_cores_from
    why = (
        "HikariCP's pool sizing guidance: connections = (core_count x 2) + "
        "effective_spindle_count for the database as a whole; more connections than that "
        "wait inside the server instead of in the pool"
    )
    if cores is None:
        return Finding(
            "info",
            "postgres.pool_sizing",
            f"{demand} connections in all ({per_process} per process); pass --db-cores N "
            "to compare with the database host's cores",
            why,
        )
    ideal = cores * 2 + 1
    return Finding(
        "info",
        "postgres.pool_sizing",
        f"{demand} connections in all ({per_process} per process); {cores} database cores "
        f"({source}) x 2 + 1 spindle = {ideal}"
        + (f": {demand - ideal} more than can run at once" if demand > ideal else ""),
        why,
    )


def _timeouts(pg: PostgresSettings, server: PostgresFacts) -> Iterator[Finding]:
    # blockmon sets statement_timeout per session, except behind PgBouncer (which refuses
    # startup parameters): there the role's/database's/server's own value applies.
    if pg.pgbouncer:
        statement = server.statement_timeout_ms / 1000
        source = "the server's statement_timeout (postgres.pgbouncer: blockmon sets none)"
    else:
        statement, source = pg.statement_timeout, "postgres.statement_timeout"
    if statement == 0:
        yield Finding(
            "warn",
            "postgres.timeouts",
            f"no statement_timeout on the server behind PgBouncer; command_timeout "
            f"{pg.command_timeout:g} s is the only bound",
            "when the client gives up (command_timeout) the statement keeps running on the "
            "server, holding its locks; set statement_timeout on the role (ALTER ROLE ... "
            "SET statement_timeout) a little below command_timeout",
        )
    elif pg.command_timeout <= statement:
        yield Finding(
            "warn",
            "postgres.timeouts",
            f"command_timeout {pg.command_timeout:g} s <= {source} {statement:g} s",
            "the client should give up after the server: then the server cancels the "
            "statement and the connection stays usable; the other way round the client "
            "drops the connection while the statement still runs on the server",
        )
    else:
        yield Finding(
            "info",
            "postgres.timeouts",
            f"{source} {statement:g} s < command_timeout {pg.command_timeout:g} s",
            "the server cancels a slow statement before the client gives up",
        )
    idle = server.idle_in_transaction_ms / 1000
    if 0 < idle < (statement or pg.command_timeout):
        yield Finding(
            "warn",
            "postgres.idle_in_transaction",
            f"idle_in_transaction_session_timeout {idle:g} s < the {statement or pg.command_timeout:g} s "
            "a statement may take",
            "a unit of work may wait between two statements (another service, a slow "
            "statement on another connection) about as long as one statement may run; "
            "the server then ends the session and the unit of work fails with "
            "'terminating connection due to idle-in-transaction timeout'",
        )


def _tls(pg: PostgresSettings, server: PostgresFacts) -> Finding:
    used = "in use" if server.ssl_in_use else "not in use"
    message = (
        f"TLS {used} (server ssl {'on' if server.server_ssl else 'off'}, sslmode {pg.sslmode})"
    )
    if not server.ssl_in_use and not local_database(pg):
        return Finding(
            "warn",
            "postgres.tls",
            message + " on a non-local network",
            "the password exchange is protected by SCRAM, but every query and row crosses "
            "the network in clear; set sslmode: require (or verify-full)",
        )
    return Finding("info", "postgres.tls", message, "a local connection needs no TLS")


def local_database(pg: PostgresSettings) -> bool:
    """Whether PostgreSQL is on this host (loopback or a Unix socket)."""
    from blockmon.postgres.engine import engine_url

    host = engine_url(pg).host or ""
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bouncer(pg: PostgresSettings, facts: Facts, shape: str, demand: int) -> Iterator[Finding]:
    bouncer = facts.bouncer
    if bouncer is None:
        if facts.proxy_port is not None or pg.pgbouncer:
            where = (
                f"the server listens on another port than {facts.proxy_port}: a proxy "
                "(PgBouncer?) sits between"
                if facts.proxy_port is not None
                else "postgres.pgbouncer is true"
            )
            yield Finding(
                "warn",
                "pgbouncer.unread",
                f"{where}, and its admin console could not be read: {facts.bouncer_error}",
                "its pool mode decides whether asyncpg's prepared statements work; add the "
                "user to PgBouncer's admin_users or stats_users",
            )
        return
    transaction = bouncer.pool_mode in ("transaction", "statement")
    if transaction and not pg.pgbouncer:
        tracked = bouncer.max_prepared_statements > 0
        yield Finding(
            "warn" if tracked else "error",
            "pgbouncer.prepared_statements",
            f"PgBouncer pool_mode {bouncer.pool_mode} and postgres.pgbouncer is false",
            "asyncpg prepares and caches named statements per connection; in transaction "
            "pooling consecutive transactions land on different server connections: "
            "DuplicatePreparedStatementError / prepared statement does not exist "
            "(SQLAlchemy's documented fix, which postgres.pgbouncer: true applies)"
            + (
                f"; PgBouncer tracks {bouncer.max_prepared_statements} prepared statements "
                "per connection, which helps but blockmon's session settings are still refused"
                if tracked
                else ""
            ),
        )
    elif pg.pgbouncer and not transaction:
        yield Finding(
            "info",
            "pgbouncer.prepared_statements",
            f"PgBouncer pool_mode {bouncer.pool_mode}: postgres.pgbouncer: true is not needed",
            "session pooling keeps one server connection per client: statement caches work",
        )
    found = _against(
        "pgbouncer.clients",
        demand,
        bouncer.max_client_conn,
        shape,
        "PgBouncer's max_client_conn",
        "PgBouncer refuses clients past max_client_conn (no more connections allowed)",
    )
    if found is not None:
        yield found
    if not transaction:
        yield Finding(
            "info",
            "pgbouncer.pool_mode",
            f"PgBouncer pool_mode {bouncer.pool_mode}: each client holds a server connection",
            "in session pooling the server limits below apply to blockmon's clients",
        )


def _redis(redis: RedisSettings, facts: Facts) -> Iterator[Finding]:
    if facts.redis is None:
        if facts.redis_error is not None:
            yield Finding(
                "error",
                "redis.reachable",
                f"cannot read Redis: {facts.redis_error}",
                "every Redis rule needs the server's own numbers",
            )
        return
    server = facts.redis
    yield from _eviction(server)
    demand = facts.deployment.processes * redis.max_connections
    others = max(0, server.connected_clients - server.ours)
    found = _against(
        "redis.clients",
        demand,
        server.maxclients - others,
        f"{facts.deployment.workers} workers x {facts.deployment.replicas} replicas x "
        f"redis.max_connections {redis.max_connections}",
        f"available clients (maxclients {server.maxclients} - {others} other clients)",
        "past maxclients Redis answers 'ERR max number of clients reached' and closes "
        "the connection",
    )
    if found is not None:
        yield found
    if server.timeout:
        interval = redis.health_check_interval
        if interval == 0 or interval >= server.timeout:
            yield Finding(
                "warn",
                "redis.timeout",
                f"server timeout {server.timeout} s, redis.health_check_interval {interval:g} s",
                "Redis closes a client idle longer than its timeout; a pooled connection "
                "idle that long fails its next command (retried once at best); keep "
                "health_check_interval below the server's timeout, or set timeout 0",
            )
    if server.role not in ("master",) and redis.mode != "sentinel":
        yield Finding(
            "error",
            "redis.role",
            f"the server is a {server.role} (replica)",
            "a replica refuses writes (READONLY): the cache and every write fail",
        )
    persistence = (
        f"RDB save {server.save!r}" if server.save is not None else "RDB unknown"
    ) + f", AOF {'on' if server.aof else 'off'}, role {server.role}"
    yield Finding(
        "info",
        "redis.persistence",
        persistence,
        "for a cache persistence only costs fork and disk time; for data it is the "
        "durability you have",
    )


def _eviction(server: RedisFacts) -> Iterator[Finding]:
    why = (
        "blockmon's Cache writes keys with a TTL and expects Redis to evict under "
        "memory pressure: with noeviction a full Redis refuses writes (OOM command not "
        "allowed), without maxmemory it grows until the host runs out of memory"
    )
    if server.maxmemory_policy == "noeviction" or server.maxmemory == 0:
        limit = f"maxmemory {server.maxmemory}" + (" (no limit)" if not server.maxmemory else "")
        yield Finding(
            "warn",
            "redis.eviction",
            f"used as a cache with maxmemory-policy {server.maxmemory_policy}, {limit}",
            why + "; set maxmemory and an allkeys-lru / volatile-lru policy",
        )
    else:
        yield Finding(
            "info",
            "redis.eviction",
            f"maxmemory {server.maxmemory}, maxmemory-policy {server.maxmemory_policy}",
            why,
        )
