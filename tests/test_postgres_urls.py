"""The URL an application already has: any PostgreSQL driver suffix names the same server
(blockmon connects with asyncpg), libpq's options are translated and take effect on a real
server, and what asyncpg cannot take is refused in one line that never shows the password."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from blockmon.config.file import load_settings
from blockmon.config.settings import PostgresSettings, Settings, validate
from blockmon.containers import PostgresContainer
from blockmon.errors import ConfigError
from blockmon.postgres.engine import connect_args, engine_url
from blockmon.postgres.replicas import replica_url
from blockmon.provisioning.servers import connect, postgres_problem
from blockmon.testing.servers import PostgresServer, free_port
from tests.monitoring.support import black_hole

SECRET = "Pa55-url-Secret-9q"
SUFFIXES = ["", "+asyncpg", "+psycopg", "+psycopg2", "+psycopg2cffi", "+pg8000"]
BLOCKMON = str(Path(sys.executable).with_name("blockmon"))
WAIT = 60.0  # seconds: a generous bound, far below postgres.connect_timeout's 600


@asynccontextmanager
async def started(config: dict[str, Any]) -> AsyncIterator[PostgresContainer]:
    container = PostgresContainer()
    container.config.from_dict(config)
    await container.init_resources()
    try:
        yield container
    finally:
        await container.shutdown_resources()


@pytest.mark.parametrize("scheme", ["postgres", *(f"postgresql{s}" for s in SUFFIXES)])
def test_every_driver_suffix_is_accepted_everywhere_a_url_goes(scheme: str) -> None:
    url = f"{scheme}://app:{SECRET}@db.example:5433/shop?sslmode=require"
    settings = validate(
        Settings, {"postgres": {"url": url, "replicas": [url]}, "migrations": {"url": url}}
    )
    assert settings.migrations.url is not None
    for target in (
        engine_url(settings.postgres),
        engine_url(settings.postgres, url=replica_url(settings.postgres, 0)),
        engine_url(settings.postgres, url=settings.migrations.url.get_secret_value()),
    ):
        assert target.drivername == "postgresql+asyncpg"
        assert (target.host, target.port, target.database) == ("db.example", 5433, "shop")
        assert target.password == SECRET
    assert settings.postgres.database == "shop"


@pytest.mark.parametrize(
    ("url", "line"),
    [
        (
            "postgresql+foo://app:{s}@db/shop",
            "postgres.url: unknown PostgreSQL driver in postgresql+foo:// (accepted: asyncpg, "
            "psycopg, psycopg2, psycopg2cffi, pg8000; blockmon connects with asyncpg whichever "
            "is named)",
        ),
        (
            "mysql+pymysql://app:{s}@db/shop",
            "postgres.url: scheme must be postgresql:// or postgres://, with or without a driver "
            "(postgresql+psycopg://...), got mysql+pymysql://",
        ),
        (
            "redis://app:{s}@db/0",
            "postgres.url: scheme must be postgresql:// or postgres://, with or without a driver "
            "(postgresql+psycopg://...), got redis://",
        ),
        (
            "postgresql+psycopg://app:{s}@db/shop?keepalives=1",
            "postgres.url: unknown query option 'keepalives' (accepted: host, port, user, "
            "password, database, passfile, target_session_attrs, krbsrvname, gsslib, "
            "prepared_statement_cache_size, dbname, sslmode, ssl, connect_timeout, "
            "application_name, options)",
        ),
        (
            "postgresql+psycopg://app:{s}@db/shop?connect_timeout=0",
            "postgres.url: query option connect_timeout has an invalid value, got '0'",
        ),
        (
            "postgresql+psycopg://app:{s}@db/shop?options=-B%208",
            "postgres.url: query option options has an invalid value, got '-B 8'",
        ),
        (
            "postgresql+psycopg://app@db/shop?application_name=" + "x" * 64,
            "postgres.url: query option application_name has an invalid value, got "
            f"'{'x' * 36}... (64 characters)",
        ),
        (
            "postgresql+psycopg://app@db/shop?password={s}&port=5432,x",
            "postgres.url: query option port has an invalid value, got '5432,x'",
        ),
    ],
)
def test_what_asyncpg_cannot_take_is_refused_in_one_line(url: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"DATABASE_URL": url.format(s=SECRET)})
    assert str(caught.value) == line
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("tree", "line"),
    [
        (
            {"migrations": {"url": "postgresql+foo://app:{s}@db/shop"}},
            "migrations.url: unknown PostgreSQL driver in postgresql+foo://",
        ),
        (
            {"postgres": {"replicas": ["mysql://app:{s}@db/shop"]}},
            "postgres.replicas.0: scheme must be postgresql:// or postgres://",
        ),
        (
            {"postgres": {"url": "postgresql+pg8000://app:{s}@db/shop?keepalives_idle=30"}},
            "postgres.url: unknown query option 'keepalives_idle'",
        ),
    ],
)
def test_the_cli_refuses_with_one_line_and_exit_2(
    tmp_path: Path, tree: dict[str, Any], line: str
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(tree).replace("{s}", SECRET))
    done = subprocess.run(
        [BLOCKMON, "config", "show", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"blockmon: error: {line}") and done.stderr.count("\n") == 1
    assert SECRET not in done.stderr and "Traceback" not in done.stderr


def test_a_psycopg_url_shows_no_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://app:{SECRET}@db:5432/shop?application_name=shop"
    path = tmp_path / "config.yml"
    path.write_text("{}\n")
    done = subprocess.run(
        [BLOCKMON, "config", "show", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url},
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    settings = load_settings(None, environ={"DATABASE_URL": url})
    assert SECRET not in repr(settings) + repr(engine_url(settings.postgres))


def url_of(server: PostgresServer, scheme: str, query: str) -> str:
    return f"{scheme}://postgres:{SECRET}@127.0.0.1:{server.port}/postgres?{query}"


async def test_a_psycopg_url_connects_with_its_options_in_effect(
    pg_primary: PostgresServer,
) -> None:
    """Through a container: the same server, libpq's options translated for asyncpg and
    visible on the server (pg_stat_activity, the session's settings)."""
    name = f"shop-{secrets.token_hex(3)}"
    query = (
        f"sslmode=disable&connect_timeout=7&application_name={name}"
        "&options=-c%20search_path%3Dshop,public%20--lock-timeout%3D1234"
    )
    url = url_of(pg_primary, "postgresql+psycopg", query)
    settings = validate(PostgresSettings, {"url": url}, "postgres")
    assert connect_args(settings, engine_url(settings))["timeout"] == 7
    async with started({"url": url}) as container:
        engine = await container.engine()
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT a.application_name, current_setting('search_path'), "
                        "current_setting('lock_timeout'), current_setting('statement_timeout') "
                        "FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()"
                    )
                )
            ).one()
    # statement_timeout: blockmon's own setting still applies beside the URL's options
    assert tuple(row) == (name, "shop,public", "1234ms", "30s")


@pytest.mark.parametrize("scheme", [f"postgresql{s}" for s in SUFFIXES] + ["postgres"])
async def test_each_suffix_reaches_the_server_for_blockmon_up(
    pg_primary: PostgresServer, scheme: str
) -> None:
    """``blockmon up``'s own connection (provisioning) takes the same URL and options."""
    url = url_of(pg_primary, scheme, "sslmode=disable&connect_timeout=5&application_name=up-probe")
    settings = validate(PostgresSettings, {"url": url}, "postgres")
    assert await postgres_problem(settings) is None
    conn = await connect(settings)
    try:
        assert await conn.fetchval("SELECT current_setting('application_name')") == "up-probe"
    finally:
        await conn.close()


async def test_libpq_multi_host_lists_are_tried_in_order(pg_primary: PostgresServer) -> None:
    dead = free_port()
    for url in (
        f"postgresql+psycopg2://postgres@/postgres?host=127.0.0.1,127.0.0.1&port={dead},"
        f"{pg_primary.port}&sslmode=disable",
        f"postgresql+psycopg2://postgres@/postgres?host=127.0.0.1:{dead}&host=127.0.0.1:"
        f"{pg_primary.port}&sslmode=disable",
        # libpq's list in the address part
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{dead},127.0.0.1:{pg_primary.port}"
        "/postgres?sslmode=disable",
    ):
        async with started({"url": url}) as container:
            engine = await container.engine()
            async with engine.connect() as conn:
                port = (await conn.execute(text("SELECT inet_server_port()"))).scalar()
        assert port == pg_primary.port, url


async def test_the_urls_connect_timeout_bounds_the_connect() -> None:
    """``connect_timeout=1`` wins over ``postgres.connect_timeout: 600``: a server that
    never answers fails the connect well within the generous bound."""
    async with black_hole() as port:
        url = f"postgresql+psycopg://app@127.0.0.1:{port}/shop?connect_timeout=1&sslmode=disable"
        async with started({"url": url, "connect_timeout": 600}) as container:
            engine = await container.engine()
            async with asyncio.timeout(WAIT) as bound:
                with pytest.raises(TimeoutError):
                    async with engine.connect():
                        pass
            assert not bound.expired()  # asyncpg's own timeout, not the bound


def test_settings_name_the_database_of_a_dbname_option() -> None:
    settings = validate(
        PostgresSettings, {"url": "postgresql+psycopg://app@db/?dbname=shop"}, "postgres"
    )
    assert settings.database == "shop" and engine_url(settings).database == "shop"


def test_blockmon_health_takes_the_applications_psycopg_url(
    tmp_path: Path, blockmon_settings: Settings
) -> None:
    """The issue's case: the application's ``DATABASE_URL`` as its own engine has it."""
    written = engine_url(blockmon_settings.postgres).set(drivername="postgresql+psycopg")
    url = written.update_query_dict({"application_name": "shop", "connect_timeout": "10"})
    redis = blockmon_settings.redis
    path = tmp_path / "config.yml"
    path.write_text("{}\n")
    done = subprocess.run(
        [BLOCKMON, "health", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "REDIS_URL": redis.url.get_secret_value()
            if redis.url is not None
            else f"redis://{redis.host}:{redis.port}/{redis.db}",
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(line.split()[:2] == ["postgres", "pass"] for line in done.stdout.splitlines())
