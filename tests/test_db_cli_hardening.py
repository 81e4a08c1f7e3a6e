"""Issue 12 for ``blockmon db``: revision arguments Alembic would assert on are refused
first with one line naming the command; a blackholed server, an unknown host and a
failed first upgrade over existing tables are each described, not just named."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from blockmon.config.secrets import LINE_LIMIT
from blockmon.config.settings import PostgresSettings, Settings
from blockmon.postgres.engine import engine_url
from blockmon.provisioning.servers import connect, postgres_address

BLOCKMON = str(Path(sys.executable).with_name("blockmon"))
SECRET = "Hunter2Secret"
REV_FORMS = "must be a revision id, head, base or a relative form like -1"


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLOCKMON_", "MIGRATIONS_"))}
    env.update(DATABASE_URL=url, BLOCKMON_LOG_LEVEL="error")
    return env


def _db(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BLOCKMON, "db", *args], env=_env(url), capture_output=True, text=True, timeout=120
    )


def _dsn(settings: PostgresSettings) -> str:
    return engine_url(settings).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["upgrade", "@"], f"db upgrade: argument REV: {REV_FORMS}, got '@'"),
        (
            ["upgrade", "base:head:x", "--sql"],
            f"db upgrade: argument REV: {REV_FORMS}, got 'base:head:x'",
        ),
        (["upgrade", "head:", "--sql"], f"db upgrade: argument REV: {REV_FORMS}, got 'head:'"),
        (["downgrade", "x@"], f"db downgrade: argument REV: {REV_FORMS}, got 'x@'"),
        (["upgrade", "base:head"], "db upgrade: a range FROM:TO needs --sql, got 'base:head'"),
        (
            ["upgrade", "head-1", "--sql"],
            "db upgrade --sql: revision 'head-1' does not resolve to a revision of the history (see blockmon db history)",
        ),
        (
            ["upgrade", "x" * 5000],
            "db upgrade: revision: Can't locate revision identified by '" + "x" * 5000 + "'",
        ),
    ],
    ids=[
        "at sign",
        "three-part range",
        "open range",
        "empty branch target",
        "range online",
        "relative nowhere",
        "long",
    ],
)
def test_bad_revisions_are_one_line(
    args: list[str], line: str, blockmon_fresh_database: PostgresSettings
) -> None:
    done = _db(*args, url=_dsn(blockmon_fresh_database))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    shown = line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 3] + "..."
    assert done.stderr == f"blockmon: error: {shown}\n"


def test_relative_revision_online_is_one_line(blockmon_fresh_database: PostgresSettings) -> None:
    done = _db("upgrade", "0001+1", url=_dsn(blockmon_fresh_database))
    assert done.returncode == 2
    assert done.stderr == (
        "blockmon: error: db upgrade: revision '0001+1' does not resolve to a revision "
        "of the history (see blockmon db history)\n"
    )


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port whose kernel accepts connections that nobody ever reads or answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_blackholed_upgrade_names_the_address_and_the_timeout(blackhole: int) -> None:
    done = _db("upgrade", url=f"postgresql://u:{SECRET}@127.0.0.1:{blackhole}/x?sslmode=disable")
    assert done.returncode == 1
    assert done.stderr == (
        f"blockmon: error: database: connecting to 127.0.0.1:{blackhole} timed out after 5s "
        "(postgres.connect_timeout)\n"
    )


def test_unknown_host_is_named() -> None:
    done = _db("current", url=f"postgresql://u:{SECRET}@no-such-host.invalid:5432/x")
    assert done.returncode == 1
    assert done.stderr.startswith(
        "blockmon: error: database: cannot resolve host 'no-such-host.invalid' ("
    )
    assert SECRET not in done.stderr


def test_up_names_the_unknown_host() -> None:
    env = _env(f"postgresql://u:{SECRET}@no-such-host.invalid:5432/x")
    done = subprocess.run(
        [BLOCKMON, "up", "--no-embedded"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "cannot resolve host 'no-such-host.invalid'" in done.stderr


async def test_current_mentions_tables_left_after_a_failed_upgrade(
    blockmon_fresh_database: PostgresSettings,
) -> None:
    conn = await connect(blockmon_fresh_database)
    try:
        await conn.execute("CREATE TABLE users (id int)")  # in the way of revision 0001
    finally:
        await conn.close()
    url = _dsn(blockmon_fresh_database)
    failed = _db("upgrade", url=url)
    assert failed.returncode == 1
    current = _db("current", url=url)
    assert current.returncode == 0, current.stderr
    assert current.stdout == (
        "blockmon: schema at base (no revision recorded, but 1 tables exist: users), "
        "not at head (0001)\n"
    )


def test_health_names_the_unknown_host() -> None:
    env = _env(f"postgresql://u:{SECRET}@no-such-host.invalid:5432/x")
    done = subprocess.run(
        [BLOCKMON, "health"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if " fail " in line}
    for row in ("postgres", "postgres:schema"):  # worded the same way in both rows
        assert "cannot resolve host 'no-such-host.invalid'" in rows[row], done.stdout
    assert "gaierror" not in done.stdout
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [("upgrade", "head"), ("current",)])
def test_a_missing_database_is_one_clean_line(
    blockmon_settings: Settings, command: tuple[str, ...]
) -> None:
    name = f"bm_missing_{os.getpid()}"
    pg = blockmon_settings.postgres
    url = engine_url(pg).set(drivername="postgresql", database=name)
    done = _db(*command, url=url.render_as_string(hide_password=False))
    assert done.returncode == 1, done.stdout + done.stderr
    where = postgres_address(pg)  # host:port, or the socket folder of an embedded server
    assert done.stderr == (
        f'blockmon: error: database: database "{name}" does not exist on {where} '
        "(blockmon up creates it)\n"
    ), done.stderr


def test_health_words_a_missing_database_in_both_rows(blockmon_settings: Settings) -> None:
    name = f"bm_missing_{os.getpid()}"
    url = engine_url(blockmon_settings.postgres).set(drivername="postgresql", database=name)
    env = _env(url.render_as_string(hide_password=False))
    done = subprocess.run(
        [BLOCKMON, "health"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if " fail " in line}
    for row in ("postgres", "postgres:schema"):
        assert rows[row].endswith(
            f'database "{name}" does not exist on '
            f"{url.host}:{url.port or 5432} (blockmon up creates it)"
        ), done.stdout
    assert "DBAPIError" not in done.stdout and "sqlalche.me" not in done.stdout
