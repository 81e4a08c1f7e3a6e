"""Rotating credentials without a restart: the PostgreSQL password read from a file for
each new connection (asyncpg's password callable), the Redis password through redis-py's
CredentialProvider. Under steady traffic the server's password and the file change
together; no request fails, the connections opened afterwards use the new secret, and
no secret shows in logs, errors, health, metrics or reprs."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import generate_latest
from sqlalchemy import event, text

from blockmon.config.settings import PostgresSettings, RedisSettings, validate
from blockmon.containers import ApplicationContainer
from blockmon.errors import ConfigError, CredentialError
from blockmon.lifespan import Lifespan
from blockmon.testing.servers import HOST, PostgresServer, RedisServer, postgres_server

WAIT = 60.0  # seconds: a generous bound for enough new connections on a loaded machine
ROLE = "rotator"


@pytest.fixture(scope="module")
def scram_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL that asks every role but ``postgres`` for a SCRAM password over TCP."""
    with postgres_server() as server:
        (server.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all postgres {HOST}/32 trust\n"
            f"host all all {HOST}/32 scram-sha-256\n"
        )
        admin(server, "SELECT pg_reload_conf()", f"CREATE ROLE {ROLE} LOGIN PASSWORD 'unset'")
        yield server


def admin(server: PostgresServer, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(server.url, timeout=10)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


async def admin_async(server: PostgresServer, statement: str) -> None:
    conn = await asyncpg.connect(server.url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_passwords_rotate_under_traffic_without_a_failed_request(
    scram_pg: PostgresServer,
    redis_server: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    old, new = f"old-{secrets.token_hex(12)}", f"new-{secrets.token_hex(12)}"
    redis_old, redis_new = f"rold-{secrets.token_hex(12)}", f"rnew-{secrets.token_hex(12)}"
    await admin_async(scram_pg, f"ALTER ROLE {ROLE} PASSWORD '{old}'")
    redis_admin = redis_server.client()
    redis_admin.config_set("requirepass", redis_old)
    redis_admin = redis_server_client(redis_server, redis_old)
    pg_file, redis_file = tmp_path / "pg-password", tmp_path / "redis-password"
    pg_file.write_text(old + "\n")
    redis_file.write_text(redis_old + "\n")
    config = {
        "postgres": scram_pg.settings()
        | {"user": ROLE, "password": "", "password_file": str(pg_file)}
        | {"max_lifetime": 0.3, "pool_size": 2, "max_overflow": 0, "validation": "pre_ping"},
        "redis": redis_server.settings()
        | {"password": "", "password_file": str(redis_file), "key_prefix": "rotation:"},
        "monitoring": {"details": "always"},
    }
    container = ApplicationContainer()
    container.config.from_dict(config)
    requests, failures = 0, []
    opened = {"before": 0, "after": 0}
    phase = "before"
    try:
        async with Lifespan(container):
            engine = await container.postgres.engine()
            cache = await container.redis.cache()

            @event.listens_for(engine.sync_engine.pool, "connect")
            def _opened(dbapi_conn: Any, record: Any) -> None:
                opened[phase] += 1

            stop = asyncio.Event()

            async def traffic() -> None:
                nonlocal requests
                while not stop.is_set():
                    try:
                        async with engine.connect() as conn:
                            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
                        await cache.set("k", "v", ttl=60)
                        requests += 1
                    except Exception as error:  # every failure is a finding
                        failures.append(error)
                    await asyncio.sleep(0.01)

            async def until(check: Any) -> None:
                deadline = time.monotonic() + WAIT
                while not check():
                    assert time.monotonic() < deadline, f"not within {WAIT}s: {opened}"
                    await asyncio.sleep(0.05)

            loops = [asyncio.create_task(traffic()) for _ in range(3)]
            await until(lambda: opened["before"] >= 3 and requests >= 20)
            # The rotation: the secret store (the files) and the servers, one after the other.
            pg_file.write_text(new + "\n")
            redis_file.write_text(redis_new + "\n")
            await admin_async(scram_pg, f"ALTER ROLE {ROLE} PASSWORD '{new}'")
            redis_admin.config_set("requirepass", redis_new)
            redis_admin = redis_server_client(redis_server, redis_new)
            phase = "after"
            sent_before = requests
            received = int(redis_admin.info("stats")["total_connections_received"])
            redis_admin.client_kill_filter(_type="normal", skipme=True)  # Redis reconnects
            await until(lambda: opened["after"] >= 10 and requests >= sent_before + 50)
            stop.set()
            await asyncio.gather(*loops)
            reconnected = int(redis_admin.info("stats")["total_connections_received"]) - received
            checker = await container.monitoring.health()
            report = await checker.report(max_age=0)
            shown = [
                generate_latest(container.monitoring.registry()).decode(),
                json.dumps(report.body(details=True)),
                repr(container.postgres.settings()),
                repr(container.redis.settings()),
                repr(engine.url),
                repr((await container.redis.client()).connection_pool),
            ]
    finally:
        redis_server_client(redis_server, redis_new).config_set("requirepass", "")
    assert failures == [], failures[:3]
    assert report.status.value != "fail", report.body(details=True)  # schema: not migrated
    # The old password no longer opens a session: every connection counted after the
    # ALTER ROLE used the new one.
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=HOST, port=scram_pg.port, user=ROLE, password=old, database="postgres"
        )
    assert opened["after"] >= 10 and reconnected >= 1
    print(
        f"requests {requests}; postgres connections opened before {opened['before']}, "
        f"with the new secret {opened['after']}; redis reconnections {reconnected}",
        file=sys.stderr,
    )
    everything = "\n".join([*shown, caplog.text, *map(str, failures)])
    for secret in (old, new, redis_old, redis_new):
        assert secret not in everything


def redis_server_client(server: RedisServer, password: str) -> Any:
    import redis

    return redis.Redis(port=server.port, password=password, socket_timeout=5)


async def test_a_failing_command_and_a_slow_one_are_one_line_without_output(
    scram_pg: PostgresServer, tmp_path: Path
) -> None:
    """The command's output (the secret, or a leak of it) is never in the error."""
    from blockmon.config.credentials import source_for

    leaky = tmp_path / "leaky.sh"
    leaky.write_text("#!/bin/sh\necho top-secret-output\necho top-secret-err >&2\nexit 3\n")
    leaky.chmod(0o755)
    slow = tmp_path / "slow.sh"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    settings = validate(PostgresSettings, {"password_command": str(leaky)}, "postgres")
    source = source_for("postgres", settings)
    assert source is not None
    with pytest.raises(CredentialError) as caught:
        await source()
    assert str(caught.value) == "postgres.password_command: exited with 3"
    settings = validate(
        PostgresSettings,
        {"password_command": str(slow), "password_command_timeout": 0.5},
        "postgres",
    )
    source = source_for("postgres", settings)
    assert source is not None
    with pytest.raises(
        CredentialError, match=r"^postgres\.password_command: no answer within 0\.5 s$"
    ):
        await source()


async def test_sync_and_async_providers_and_a_command(
    scram_pg: PostgresServer, tmp_path: Path
) -> None:
    """``password_provider: module:callable``, sync or async, and ``password_command``
    open a session."""
    password = f"prov-{secrets.token_hex(8)}"
    await admin_async(scram_pg, f"ALTER ROLE {ROLE} PASSWORD '{password}'")
    module = type(sys)("rotation_provider_for_tests")
    module.sync = lambda: password  # type: ignore[attr-defined]

    async def give() -> str:
        return password

    module.give = give  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        from blockmon.postgres.engine import create_engine

        secret_file = tmp_path / "secret"
        secret_file.write_text(password + "\n")
        sources = [
            {"password_provider": f"{module.__name__}:sync"},
            {"password_provider": f"{module.__name__}:give"},
            {"password_command": f"cat {secret_file}"},
        ]
        for source in sources:
            base = scram_pg.settings() | {"user": ROLE, "password": ""}
            settings = validate(PostgresSettings, base | source, "postgres")
            engine = create_engine(settings)
            try:
                async with engine.connect() as conn:
                    assert (await conn.execute(text("SELECT current_user"))).scalar() == ROLE
            finally:
                await engine.dispose()
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize(
    ("model", "data", "line"),
    [
        (PostgresSettings, {"password_file": "/no/such/file"}, "postgres.password_file: must be a readable file"),
        (PostgresSettings, {"password_command": "no-such-program --x"}, "postgres.password_command: program 'no-such-program' not found"),
        (PostgresSettings, {"password_provider": "os"}, "postgres.password_provider: must be 'module:callable', got 'os'"),
        (PostgresSettings, {"password_provider": "os:nope"}, "postgres.password_provider: cannot import 'os:nope' (AttributeError)"),
        (PostgresSettings, {"password": "x", "password_command": "true"}, "postgres.password_command: cannot be combined with postgres.password (choose one)"),
        (RedisSettings, {"password": "x", "password_provider": "os:getcwd"}, "redis.password_provider: cannot be combined with redis.password (choose one)"),
        (RedisSettings, {"mode": "cluster", "cluster_nodes": ["127.0.0.1:7000"], "password_file": "/etc/hostname"}, "redis.password_file: applies to mode standalone only (mode is cluster)"),
    ],
)  # fmt: skip
def test_bad_password_settings_are_one_line(model: Any, data: Any, line: str) -> None:
    section = "postgres" if model is PostgresSettings else "redis"
    with pytest.raises(ConfigError) as caught:
        validate(model, data, section)
    assert str(caught.value) == line


async def test_a_password_fetched_just_before_the_rotation_is_asked_again(
    scram_pg: PostgresServer,
) -> None:
    """The source gave the old secret (the store had not caught up): the server refuses
    it, the connection is opened once more with a fresh answer, the caller sees nothing."""
    password = f"fresh-{secrets.token_hex(8)}"
    await admin_async(scram_pg, f"ALTER ROLE {ROLE} PASSWORD '{password}'")
    answers = iter(["stale-secret", password])
    module = type(sys)("stale_provider_for_tests")
    module.give = lambda: next(answers)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        from blockmon.postgres.engine import create_engine

        base = scram_pg.settings() | {"user": ROLE, "password": ""}
        target = f"{module.__name__}:give"
        engine = create_engine(
            validate(PostgresSettings, base | {"password_provider": target}, "postgres")
        )
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT current_user"))).scalar() == ROLE
        finally:
            await engine.dispose()
    finally:
        del sys.modules[module.__name__]
    assert next(answers, None) is None  # asked twice, no more
