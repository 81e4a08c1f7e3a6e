"""``blockmon doctor`` against real servers, each configured to trip one rule: a low
max_connections, a role connection limit, a short idle-in-transaction timeout, timeouts
in the wrong order, PgBouncer's transaction pooling with prepared statements on, Redis
with noeviction, too few maxclients, a short idle timeout, a replica; and one deployment
where everything is fine (exit 0)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from blockmon.cli import main
from blockmon.testing.proxy import FaultProxy
from blockmon.testing.servers import (
    HOST,
    PgBouncer,
    PostgresServer,
    RedisServer,
    free_port,
    postgres_server,
)
from tests.monitoring.support import plain

ENV_VARS = (
    "BLOCKMON_CONFIG",
    "BLOCKMON_LOG_LEVEL",
    "DATABASE_URL",
    "REDIS_URL",
    "MIGRATIONS_DATABASE_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    *(f"PG{v}" for v in ("HOST", "PORT", "USER", "PASSWORD", "DATABASE")),
    *(f"REDIS_{v}" for v in ("HOST", "PORT", "USERNAME", "PASSWORD")),
)
# A Redis configured as a cache should be: bounded, evicting.
CACHE_REDIS = {"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: the tests change its system settings."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def sql(server: PostgresServer, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(server.url, timeout=10)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def show(server: PostgresServer, name: str) -> str:
    async def run() -> str:
        conn = await asyncpg.connect(server.url, timeout=10)
        try:
            return str(await conn.fetchval(f"SHOW {name}"))
        finally:
            await conn.close()

    return asyncio.run(run())


@contextmanager
def system(server: PostgresServer, restart: bool = False, **values: str) -> Iterator[None]:
    """``ALTER SYSTEM SET`` each value (reload, or restart), the old values set back
    afterwards (RESET would drop the launcher's own, kept in postgresql.auto.conf too)."""
    before = {name: show(server, name) for name in values}
    sql(server, *(f"ALTER SYSTEM SET {k} = '{v}'" for k, v in values.items()))
    server.restart() if restart else sql(server, "SELECT pg_reload_conf()")
    try:
        yield
    finally:
        sql(server, *(f"ALTER SYSTEM SET {k} = '{v}'" for k, v in before.items()))
        server.restart() if restart else sql(server, "SELECT pg_reload_conf()")


@contextmanager
def redis_config(server: RedisServer, **values: str) -> Iterator[None]:
    """``CONFIG SET`` on the throwaway Redis, restored afterwards."""
    client = server.client()
    names = [k.replace("_", "-") for k in values]
    before = {n: client.config_get(n)[n] for n in names}
    for name, value in zip(names, values.values(), strict=True):
        client.config_set(name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            client.config_set(name, value)


def doctor(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: dict[str, Any],
    *args: str,
) -> tuple[int, dict[str, Any]]:
    """Run ``blockmon doctor --json`` on ``config``: the exit code and the document."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    code = main(["doctor", "-c", str(path), "--json", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    document = json.loads(out)
    assert document["exit"] == code
    return code, document


def findings(document: dict[str, Any], level: str | None = None) -> dict[str, dict[str, Any]]:
    return {f["rule"]: f for f in document["findings"] if level is None or f["level"] == level}


def small(pg: PostgresServer, redis: RedisServer, **postgres: Any) -> dict[str, Any]:
    """Pools of 5 + 5 and 10 Redis connections per process."""
    return {
        "postgres": pg.settings() | {"pool_size": 5, "max_overflow": 5} | postgres,
        "redis": redis.settings() | {"max_connections": 10},
    }


def test_a_deployment_within_every_limit_is_fine(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    with redis_config(redis, **CACHE_REDIS):
        code, document = doctor(
            tmp_path, monkeypatch, capsys, small(pg, redis), "--workers", "2", "--db-cores", "8"
        )
    assert code == 0, document["findings"]
    assert document["status"] == "fine"
    assert set(findings(document, "info")) >= {
        "postgres.connections", "postgres.timeouts", "postgres.pool_sizing",
        "postgres.tls", "redis.eviction", "redis.clients", "redis.persistence",
    }  # fmt: skip
    connections = findings(document)["postgres.connections"]["message"]
    assert "(pool_size 5 + max_overflow 5) = 20" in connections
    assert "max_connections 300" in connections
    sizing = findings(document)["postgres.pool_sizing"]["message"]
    assert "8 database cores (--db-cores) x 2 + 1 spindle = 17" in sizing
    assert document["deployment"]["processes"] == 2


def test_more_connections_than_max_connections_will_break(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    config = {"postgres": pg.settings(), "redis": redis.settings()}  # 10 + 10 per process
    with system(pg, restart=True, max_connections="50"), redis_config(redis, **CACHE_REDIS):
        code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "4")
        assert code == 2
        first = document["findings"][0]
        assert (first["level"], first["rule"]) == ("error", "postgres.connections")
        assert "= 80 > available connections (max_connections 50 - reserved 3" in first["message"]
        assert "too many clients" in first["why"]
        # 2 workers: 40 of 47 is more than 80%: a warning, exit 1.
        code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "2")
        assert code == 1
        assert findings(document, "warn")["postgres.connections"]["message"].endswith("= 47")
        # Two replicas of two workers: the same 80 connections.
        code, document = doctor(
            tmp_path, monkeypatch, capsys, config, "--workers", "2", "--replicas", "2"
        )
        assert code == 2 and document["findings"][0]["rule"] == "postgres.connections"


def test_the_roles_connection_limit(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    sql(pg, "CREATE ROLE doctor_app LOGIN CONNECTION LIMIT 15")
    try:
        config = small(pg, redis, user="doctor_app")
        with redis_config(redis, **CACHE_REDIS):
            code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "2")
        assert code == 2
        limit = findings(document, "error")["postgres.role_limit"]
        assert "rolconnlimit of doctor_app" in limit["message"] and "= 20 > " in limit["message"]
    finally:
        sql(pg, "DROP ROLE doctor_app")


def test_the_databases_connection_limit(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    sql(pg, "CREATE DATABASE doctor_limited CONNECTION LIMIT 15")
    try:
        config = small(pg, redis, database="doctor_limited")
        with redis_config(redis, **CACHE_REDIS):
            code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "2")
            assert code == 2
            limit = findings(document, "error")["postgres.database_limit"]["message"]
            assert limit == (
                "2 workers x 1 replicas x (pool_size 5 + max_overflow 5) = 20 > the "
                "database's connection limit (datconnlimit) = 15"
            )
            sql(pg, "ALTER DATABASE doctor_limited CONNECTION LIMIT -1")
            code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "2")
        assert code == 0, document["findings"]
        assert "postgres.database_limit" not in findings(document)
    finally:
        sql(pg, "DROP DATABASE doctor_limited")


async def _sessions(server: PostgresServer, names: dict[str, int]) -> list[asyncpg.Connection]:
    """Sessions held open, ``n`` for each application_name."""
    return [
        await asyncpg.connect(server.url, timeout=10, server_settings={"application_name": name})
        for name, n in names.items()
        for _ in range(n)
    ]


async def _close(sessions: list[asyncpg.Connection]) -> None:
    await asyncio.gather(*(conn.close() for conn in sessions))


def test_sessions_of_other_applications_leave_fewer_connections(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """Another application's sessions take from what the pools can get; blockmon's own
    (its application_name: a deployment already running) are not counted twice."""
    config = small(pg, redis)  # 5 + 5 per process; 3 workers: 30 of 47
    loop = asyncio.new_event_loop()  # the sessions' own: the doctor runs one of its own
    try:
        with system(pg, restart=True, max_connections="50"), redis_config(redis, **CACHE_REDIS):
            code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "3")
            assert code == 0, document["findings"]
            held = loop.run_until_complete(_sessions(pg, {"other-app": 20, "blockmon": 5}))
            try:
                code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "3")
            finally:
                loop.run_until_complete(_close(held))
    finally:
        loop.close()
    assert code == 2
    assert document["postgres"]["sessions"] == {"other-app": 20, "blockmon": 5}
    message = findings(document, "error")["postgres.connections"]["message"]
    assert message.endswith(
        "= 30 > available connections (max_connections 50 - reserved 3 - 20 held by other "
        "applications) = 27"
    )


def test_an_idle_in_transaction_timeout_shorter_than_a_statement(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    with system(pg, idle_in_transaction_session_timeout="5s"), redis_config(redis, **CACHE_REDIS):
        code, document = doctor(tmp_path, monkeypatch, capsys, small(pg, redis))
    assert code == 1
    idle = findings(document, "warn")["postgres.idle_in_transaction"]
    assert "idle_in_transaction_session_timeout 5 s < the 30 s" in idle["message"]


def test_timeouts_in_the_wrong_order(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    config = small(pg, redis, statement_timeout=30, command_timeout=20)
    with redis_config(redis, **CACHE_REDIS):
        code, document = doctor(tmp_path, monkeypatch, capsys, config)
    assert code == 1
    message = findings(document, "warn")["postgres.timeouts"]["message"]
    assert message == "command_timeout 20 s <= postgres.statement_timeout 30 s"


def test_pgbouncer_transaction_pooling_with_prepared_statements_will_break(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    with PgBouncer(pg.port, max_client_conn=30) as bouncer, redis_config(redis, **CACHE_REDIS):
        config = small(pg, redis) | {"postgres": bouncer.settings() | {"pgbouncer": False}}
        code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "2")
        assert code == 2
        assert document["pgbouncer"]["pool_mode"] == "transaction"
        error = findings(document, "error")
        assert "pgbouncer.prepared_statements" in error
        assert "DuplicatePreparedStatementError" in error["pgbouncer.prepared_statements"]["why"]
        # 2 x (10 + 10) = 40 clients against max_client_conn 30.
        assert "= 40 > PgBouncer's max_client_conn = 30" in error["pgbouncer.clients"]["message"]
        # postgres.pgbouncer: true fixes the statements; the server has no statement_timeout
        # of its own (blockmon sets none behind PgBouncer), which is a warning.
        config["postgres"] |= {"pgbouncer": True, "pool_size": 5, "max_overflow": 5}
        code, document = doctor(tmp_path, monkeypatch, capsys, config, "--workers", "2")
        assert code == 1, document["findings"]
        assert "pgbouncer.prepared_statements" not in findings(document)
        assert "no statement_timeout" in findings(document, "warn")["postgres.timeouts"]["message"]
        server_side = findings(document)["postgres.connections"]["message"]
        assert server_side.startswith("PgBouncer's server pool (default_pool_size 10")


@contextmanager
def tcp_proxy(port: int) -> Iterator[FaultProxy]:
    """The suite's TCP proxy before ``port``, on a loop of its own thread (the doctor
    runs its own loop in this one)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = asyncio.run_coroutine_threadsafe(FaultProxy(HOST, port).start(), loop).result(30)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def test_a_proxy_whose_pool_mode_cannot_be_read_is_a_warning(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """The URL names another port than the server listens on: something sits between;
    it has no PgBouncer admin console, so the doctor says it cannot tell the pool mode."""
    with tcp_proxy(pg.port) as proxy, redis_config(redis, **CACHE_REDIS):
        config = small(pg, redis, port=proxy.port)
        code, document = doctor(tmp_path, monkeypatch, capsys, config)
    assert code == 1, document["findings"]
    unread = findings(document, "warn")["pgbouncer.unread"]["message"]
    assert unread.startswith(f"the server listens on another port than {proxy.port}")
    assert "could not be read" in unread


def test_redis_without_eviction_used_as_a_cache(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    code, document = doctor(tmp_path, monkeypatch, capsys, small(pg, redis))
    assert code == 1
    message = findings(document, "warn")["redis.eviction"]["message"]
    assert message == "used as a cache with maxmemory-policy noeviction, maxmemory 0 (no limit)"
    with redis_config(redis, maxmemory="64mb", maxmemory_policy="noeviction"):
        code, document = doctor(tmp_path, monkeypatch, capsys, small(pg, redis))
    assert code == 1 and "redis.eviction" in findings(document, "warn")


def test_redis_maxclients_against_every_worker_pool(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    with redis_config(redis, maxclients="30", **CACHE_REDIS):
        code, document = doctor(tmp_path, monkeypatch, capsys, small(pg, redis), "--workers", "4")
    assert code == 2
    clients = findings(document, "error")["redis.clients"]["message"]
    assert "4 workers x 1 replicas x redis.max_connections 10 = 40 > available clients" in clients
    assert "maxclients 30" in clients


def test_a_redis_idle_timeout_shorter_than_the_health_check(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    with redis_config(redis, timeout="10", **CACHE_REDIS):
        code, document = doctor(tmp_path, monkeypatch, capsys, small(pg, redis))
    assert code == 1
    message = findings(document, "warn")["redis.timeout"]["message"]
    assert message == "server timeout 10 s, redis.health_check_interval 30 s"


def test_a_redis_replica_will_break(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    with RedisServer(extra=["--replicaof", HOST, str(redis.port)]) as replica:
        config = small(pg, replica)
        replica.client().config_set("maxmemory", "64mb")
        replica.client().config_set("maxmemory-policy", "allkeys-lru")
        code, document = doctor(tmp_path, monkeypatch, capsys, config)
    assert code == 2
    assert findings(document, "error")["redis.role"]["message"] == "the server is a slave (replica)"


def test_the_live_workers_of_the_multiprocess_directory(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """Without --workers, the processes with live gauge files that still run."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        for pid in (os.getpid(), sleeper.pid, gone.pid):
            (directory / f"gauge_livesum_{pid}.db").write_bytes(b"")
        config = small(pg, redis) | {"monitoring": {"multiprocess_dir": str(directory)}}
        with redis_config(redis, **CACHE_REDIS):
            code, document = doctor(tmp_path, monkeypatch, capsys, config)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 0, document["findings"]
    assert document["deployment"]["workers"] == 2
    assert document["deployment"]["workers_from"] == f"2 live in {directory}"


def test_an_unreachable_server_will_break_and_no_secret_is_shown(
    redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    secret = "s3cret-doctor-pw"
    postgres = {"host": HOST, "port": free_port(), "password": secret, "connect_timeout": 2}
    config = {"postgres": postgres, "redis": redis.settings() | {"password": secret}}
    code, document = doctor(tmp_path, monkeypatch, capsys, config)
    assert code == 2
    assert findings(document, "error")["postgres.reachable"]["message"].startswith(
        "cannot read PostgreSQL: "
    )
    assert secret not in json.dumps(document)
    # The text output says the same, without the secret either.
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert main(["doctor", "-c", str(tmp_path / "config.yml")]) == 2
    out, err = capsys.readouterr()
    assert "verdict: will break (exit 2); breaks first: postgres.reachable" in out
    assert secret not in out + err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--workers", "0"], "doctor: argument --workers: must be an integer >= 1, got '0'"),
        (["--replicas", "two"], "doctor: argument --replicas: must be an integer >= 1, got 'two'"),
        (["--db-cores", "-1"], "doctor: argument --db-cores: must be an integer >= 1, got '-1'"),
        (["--bogus"], "doctor: unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"blockmon: error: {line}\n"


def test_the_readme_main_job_has_no_error(
    blockmon_config: dict[str, Any], tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """The repository's config.yml (the main job's settings) on this run's servers: no
    rule is broken (a shared development Redis without maxmemory may warn)."""
    repo = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yml").read_text())
    config = plain(  # an embedded server's URL is a SecretStr (isolated runs)
        {
            "postgres": {**blockmon_config["postgres"], "pool_size": repo["postgres"]["pool_size"]},
            "redis": blockmon_config["redis"],
        }
    )
    code, document = doctor(tmp_path, monkeypatch, capsys, config)
    assert code in (0, 1), document["findings"]
    assert findings(document, "error") == {}
    assert "postgres.connections" in findings(document)


def test_a_database_not_created_yet_is_read_through_the_postgres_database(
    pg: PostgresServer, redis: RedisServer, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    config = small(pg, redis, database="not_created_yet")
    with redis_config(redis, **CACHE_REDIS):
        code, document = doctor(tmp_path, monkeypatch, capsys, config)
    assert code == 0, document["findings"]
    assert document["postgres"]["max_connections"] == 300
    assert "database not_created_yet does not exist yet" in document["notes"][0]
