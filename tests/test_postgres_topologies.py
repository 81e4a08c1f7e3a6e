"""Read replicas, multi-host DSNs and PgBouncer, against throwaway local servers."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from blockmon.config.settings import PostgresSettings, validate
from blockmon.containers import PostgresContainer
from blockmon.errors import ConfigError, NoHealthyReplica
from blockmon.health.checks.replicas import replica_health
from blockmon.postgres.engine import create_engine
from blockmon.postgres.replicas import Router, create_reader_engines, replication_lag
from blockmon.testing.servers import PgBouncer, PostgresServer, free_port, postgres_server

WAIT = 30.0  # seconds: generous bound for replication on a loaded machine


def pg_config(primary: PostgresServer, **extra: Any) -> dict[str, Any]:
    return {"url": primary.url, "sslmode": "disable", "connect_timeout": 5, **extra}


@asynccontextmanager
async def started(config: dict[str, Any]) -> AsyncIterator[PostgresContainer]:
    container = PostgresContainer()
    container.config.from_dict(config)
    await container.init_resources()
    try:
        yield container
    finally:
        await container.shutdown_resources()


async def server_port(engine_or_conn: Any) -> tuple[int, bool]:
    """(port, in recovery) of the server a connection landed on."""
    sql = text("SELECT inet_server_port(), pg_is_in_recovery()")
    if isinstance(engine_or_conn, AsyncEngine):
        async with engine_or_conn.connect() as conn:
            port, standby = (await conn.execute(sql)).one()
    else:
        port, standby = (await engine_or_conn.execute(sql)).one()
    return int(port), bool(standby)


async def wait_replicated(replica: AsyncEngine, table: str, rows: int) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        async with replica.connect() as conn:
            exists = (await conn.execute(text(f"SELECT to_regclass('{table}')"))).scalar()
            if (
                exists
                and (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == rows
            ):
                return
        assert time.monotonic() < deadline, f"{table} not replicated after {WAIT}s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def table(pg_primary: PostgresServer) -> AsyncIterator[str]:
    """A table of this test's own on the primary, dropped afterwards."""
    name = f"t_{secrets.token_hex(4)}"
    engine = create_engine(validate(PostgresSettings, pg_config(pg_primary)))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {name} (id int PRIMARY KEY, v text)"))
        yield name
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {name}"))
    finally:
        await engine.dispose()


# --- read replicas ------------------------------------------------------------------------


async def test_reads_go_to_the_replica_and_writes_to_the_primary(
    pg_primary: PostgresServer, pg_replica: PostgresServer, table: str
) -> None:
    config = pg_config(pg_primary, replicas=[f"127.0.0.1:{pg_replica.port}"])
    async with started(config) as container:
        router: Router = await container.router()
        transactions = await container.transactions()
        async with transactions.transaction() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1, 'one')"))
            assert (await server_port(await session.connection()))[0] == pg_primary.port
        await wait_replicated(router.readers[0], table, 1)
        async with router.read_session() as session:
            assert (await server_port(await session.connection())) == (pg_replica.port, True)
            value = (await session.execute(text(f"SELECT v FROM {table} WHERE id = 1"))).scalar()
            assert value == "one"
        health = await replica_health(router)
        assert [(h.replica, h.status) for h in health] == [(f"127.0.0.1:{pg_replica.port}", "pass")]
        assert health[0].lag_seconds is not None and health[0].lag_seconds >= 0


async def test_an_unreachable_replica_is_skipped(
    pg_primary: PostgresServer, pg_replica: PostgresServer
) -> None:
    dead = free_port()
    config = pg_config(pg_primary, replicas=[f"127.0.0.1:{dead}", f"127.0.0.1:{pg_replica.port}"])
    async with started(config) as container:
        router: Router = await container.router()
        for _ in range(4):  # round robin would pick the dead one every other time
            async with router.read_connection() as conn:
                assert await server_port(conn) == (pg_replica.port, True)
        health = {h.replica: h for h in await replica_health(router)}
        assert health[f"127.0.0.1:{dead}"].status == "fail"
        assert health[f"127.0.0.1:{dead}"].error is not None
        assert health[f"127.0.0.1:{pg_replica.port}"].status == "pass"


async def test_reads_fall_back_to_the_writer_when_no_replica_is_up(
    pg_primary: PostgresServer,
) -> None:
    config = pg_config(pg_primary, replicas=[f"127.0.0.1:{free_port()}"])
    async with started(config) as container:
        router: Router = await container.router()
        async with router.read_connection() as conn:
            assert await server_port(conn) == (pg_primary.port, False)
    async with started(config | {"replica_fallback": False}) as container:
        router = await container.router()
        with pytest.raises(NoHealthyReplica, match=r"postgres\.replica_fallback is false"):
            async with router.read_connection():
                pass


async def test_without_replicas_reads_use_the_writer(pg_primary: PostgresServer) -> None:
    async with started(pg_config(pg_primary)) as container:
        router: Router = await container.router()
        assert router.readers == [] and await replica_health(router) == []
        async with router.read_session() as session:
            assert await server_port(await session.connection()) == (pg_primary.port, False)


async def test_replication_lag_is_measured_and_warned_about(
    pg_primary: PostgresServer,
    pg_replica: PostgresServer,
    table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = pg_config(pg_primary, replicas=[f"127.0.0.1:{pg_replica.port}"], replica_lag_warn=0.5)
    async with started(config) as container:
        router: Router = await container.router()
        replica, writer = router.readers[0], await container.engine()
        assert await replication_lag(writer) is None  # not a replica
        async with writer.begin() as conn:
            await conn.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
        await wait_replicated(replica, table, 1)
        async with replica.connect() as conn:
            await conn.execute(text("SELECT pg_wal_replay_pause()"))
            await conn.commit()
        try:
            async with writer.begin() as conn:
                await conn.execute(text(f"INSERT INTO {table} VALUES (2, 'b')"))
            await asyncio.sleep(0.6)  # older than the threshold, never replayed
            deadline = time.monotonic() + WAIT
            while (lag := await replication_lag(replica)) is not None and lag <= 0.5:
                assert time.monotonic() < deadline, "the paused replica never showed lag"
                await asyncio.sleep(0.1)
            [health] = await replica_health(router)
            assert health.status == "warn"
            assert health.lag_seconds is not None and health.lag_seconds > 0.5
        finally:
            async with replica.connect() as conn:
                await conn.execute(text("SELECT pg_wal_replay_resume()"))
                await conn.commit()
        await wait_replicated(replica, table, 2)
        [health] = await replica_health(router)
        assert health.status == "pass" and health.lag_seconds == 0


async def test_replica_credentials_stay_out_of_reprs_and_health(
    pg_primary: PostgresServer,
) -> None:
    dead = free_port()
    url = f"postgresql://reader:s3cret-replica-pw@127.0.0.1:{dead}/postgres"
    async with started(pg_config(pg_primary, replicas=[url])) as container:
        router: Router = await container.router()
        [health] = await replica_health(router)
        shown = f"{router!r} {health!r} {container.settings()!r} {router.readers[0].url!r}"
        assert "s3cret-replica-pw" not in shown
        assert health.status == "fail"


# --- multi-host DSNs ----------------------------------------------------------------------


async def test_multi_host_dsn_skips_a_host_that_is_down(pg_primary: PostgresServer) -> None:
    dead = free_port()
    settings = validate(
        PostgresSettings,
        {"hosts": [f"127.0.0.1:{dead}", f"127.0.0.1:{pg_primary.port}"], "database": "postgres"}
        | {"sslmode": "disable"},
    )
    engine = create_engine(settings)
    try:
        assert await server_port(engine) == (pg_primary.port, False)
    finally:
        await engine.dispose()
    url = (
        f"postgresql://postgres@/postgres?host=127.0.0.1:{dead}"
        f"&host=127.0.0.1:{pg_primary.port}&sslmode=disable"
    )
    engine = create_engine(validate(PostgresSettings, {"url": url}))
    try:
        assert await server_port(engine) == (pg_primary.port, False)
    finally:
        await engine.dispose()


async def test_multi_host_engine_moves_to_the_next_host_when_the_first_dies(
    pg_primary: PostgresServer,
) -> None:
    first = postgres_server()
    try:
        settings = validate(
            PostgresSettings,
            {"hosts": [f"127.0.0.1:{first.port}", f"127.0.0.1:{pg_primary.port}"]}
            | {"database": "postgres", "sslmode": "disable", "validation": "pre_ping"},
        )
        engine = create_engine(settings)
        try:
            assert await server_port(engine) == (first.port, False)
            first.stop()
            errors = 0
            deadline = time.monotonic() + WAIT
            while True:
                assert time.monotonic() < deadline, f"never reached the second host ({errors})"
                try:
                    port = (await server_port(engine))[0]
                    break
                except DBAPIError:
                    errors += 1
            assert port == pg_primary.port
            assert errors <= 1
        finally:
            await engine.dispose()
    finally:
        first.remove()


@pytest.mark.parametrize(
    ("attrs", "expect_standby"), [("read-write", False), ("primary", False), ("standby", True)]
)
async def test_target_session_attrs_picks_the_right_host(
    pg_primary: PostgresServer, pg_replica: PostgresServer, attrs: str, expect_standby: bool
) -> None:
    hosts = [f"127.0.0.1:{pg_replica.port}", f"127.0.0.1:{pg_primary.port}"]
    settings = validate(
        PostgresSettings,
        {"hosts": hosts, "target_session_attrs": attrs, "database": "postgres"}
        | {"sslmode": "disable"},
    )
    engine = create_engine(settings)
    try:
        port, standby = await server_port(engine)
        assert standby is expect_standby
        assert port == (pg_replica.port if expect_standby else pg_primary.port)
    finally:
        await engine.dispose()


# --- PgBouncer ----------------------------------------------------------------------------

QUERIES = [
    ("SELECT CAST(:n AS int) + 1", lambda n: n + 1),
    ("SELECT length(CAST(CAST(:n AS int) AS text))", lambda n: len(str(n))),
    ("SELECT CAST(:n AS bigint) * 2", lambda n: n * 2),
    ("SELECT count(*) FROM generate_series(1, CAST(:n AS int) % 7 + 1)", lambda n: n % 7 + 1),
]


Query = Callable[[str, dict[str, int]], Awaitable[Any]]


async def hammer(query: Query, total: int, concurrency: int) -> list[BaseException]:
    """Run ``total`` parameterised queries from ``concurrency`` tasks; return the errors."""
    errors: list[BaseException] = []
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            sql, expected = QUERIES[n % len(QUERIES)]
            try:
                assert await query(sql, {"n": n}) == expected(n)
            except DBAPIError as error:
                errors.append(error)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


def on_engine(engine: AsyncEngine) -> Query:
    async def query(sql: str, params: dict[str, int]) -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    return query


def bouncer_config(bouncer: PgBouncer, **extra: Any) -> dict[str, Any]:
    return {
        "url": bouncer.url(),
        "sslmode": "disable",
        "pool_size": 25,
        "max_overflow": 25,
        "pool_timeout": 60,
        **extra,
    }


async def test_pgbouncer_setting_gives_zero_prepared_statement_errors(pgbouncer: PgBouncer) -> None:
    """Half the queries on engine connections, half through `Statements` (which must
    not use AUTOCOMMIT behind PgBouncer)."""
    async with started(bouncer_config(pgbouncer, pgbouncer=True)) as container:
        engine, statements = await container.engine(), await container.statements()
        via_engine = on_engine(engine)

        async def query(sql: str, params: dict[str, int]) -> Any:
            if params["n"] % 2:
                return await statements.scalar(sql, params)
            return await via_engine(sql, params)

        started_at = time.monotonic()
        errors = await hammer(query, 10_000, 50)
        print(f"pgbouncer: 10000 queries at 50 tasks in {time.monotonic() - started_at:.1f}s")
        assert errors == []


async def test_statements_behind_pgbouncer_commit_their_writes(pgbouncer: PgBouncer) -> None:
    """Without AUTOCOMMIT, each statement still commits (its own short transaction)."""
    table = f"bouncer_{secrets.token_hex(4)}"
    async with started(bouncer_config(pgbouncer, pgbouncer=True)) as container:
        statements = await container.statements()
        await statements.execute(f"CREATE TABLE {table} (n int)")
        try:
            assert await statements.execute(f"INSERT INTO {table} VALUES (:n)", {"n": 7}) == 1
            assert await statements.execute(text(f"INSERT INTO {table} VALUES (8)")) == 1
            engine = await container.engine()
            async with engine.connect() as conn:  # another connection sees both rows
                rows = (await conn.execute(text(f"SELECT n FROM {table} ORDER BY n"))).all()
            assert [r.n for r in rows] == [7, 8]
        finally:
            await statements.execute(f"DROP TABLE {table}")


async def test_without_the_setting_pgbouncer_breaks_prepared_statements(
    pgbouncer: PgBouncer,
) -> None:
    """The control: the same load on a plain SQLAlchemy asyncpg engine (no fixes) does
    fail, so the test above can fail too."""
    url = pgbouncer.url().replace("postgresql://", "postgresql+asyncpg://")
    engine = create_async_engine(url, pool_size=25, max_overflow=25, pool_timeout=60)
    try:
        errors = await hammer(on_engine(engine), 1_000, 50)
        assert any("prepared statement" in str(e) for e in errors), errors[:3]
    finally:
        await engine.dispose()


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"replicas": ["nohost"]},
            "postgres.replicas.0: expected host:port or a postgresql:// URL",
        ),
        ({"replicas": ["db:5432", "h:99999"]}, "postgres.replicas.1: expected host:port"),
        (
            {"replicas": ["mysql://h/db"]},
            "postgres.replicas.0: scheme must be postgresql://",  # checked at load
        ),
        ({"hosts": ["a:1", "b"]}, "postgres.hosts.1: must be host:port"),
        ({"target_session_attrs": "writer"}, "postgres.target_session_attrs: must be one of"),
        ({"replica_lag_warn": 0}, "postgres.replica_lag_warn: must be > 0"),
        ({"pgbouncer": "sometimes"}, "postgres.pgbouncer: must be true or false"),
    ],
)
def test_bad_scale_out_settings_name_the_setting(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_reader_engines(validate(PostgresSettings, data, "postgres"))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_config_show_masks_replica_passwords(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from blockmon.cli import main

    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = tmp_path / "config.yml"
    config.write_text(
        "postgres:\n  replicas:\n    - 'postgresql://reader:pw-of-replica@db2:5432/app'\n"
        "    - 'db3:5432'\n"
    )
    assert main(["config", "show", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "pw-of-replica" not in out
    assert "postgresql://reader:***@db2:5432/app" in out and "db3:5432" in out
