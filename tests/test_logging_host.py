"""The host's logging stays the host's: starting ApplicationContainer leaves the root
logger, its handlers and level, other loggers and structlog's configuration as the
application set them, and blockmon's own events still reach the application's handlers,
secrets masked. ``log.configure_root`` (the CLI) takes over instead, and
``postgres.echo`` logs SQL through the logging pipeline, never on stdout."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import text

from blockmon.config.settings import Settings
from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.postgres.engine import engine_url

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "host_logging.py"
BLOCKMON = str(Path(sys.executable).with_name("blockmon"))
SECRET = "Hl-s3ntinel-5a9c"  # trust auth accepts any password
BOUND = "Hb-s3ntinel-0d13"
_STRIPPED = ("PG", "REDIS", "DATABASE", "BLOCKMON", "MIGRATIONS")


def _url_with_secret(settings: Settings) -> str:
    url = engine_url(settings.postgres).set(password=SECRET)
    return url.render_as_string(hide_password=False)


def _redis_url(settings: Settings) -> str:
    redis = settings.redis
    if redis.url is not None:
        return redis.url.get_secret_value()
    return f"redis://{redis.host}:{redis.port}/{redis.db}"


def _environment(settings: Settings) -> dict[str, str]:
    """The test's servers, the PostgreSQL password a sentinel, nothing else inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED)}
    return {**env, "DATABASE_URL": _url_with_secret(settings), "REDIS_URL": _redis_url(settings)}


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def _state() -> dict[str, Any]:
    root = logging.getLogger()
    return {
        "root_handlers": list(root.handlers),
        "root_level": root.level,
        "app.db": logging.getLogger("app.db").level,
        "sqlalchemy": [
            (logging.getLogger(n).handlers, logging.getLogger(n).level)
            for n in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.engine.Engine")
        ],
        "structlog": structlog.get_config(),
        "structlog_configured": structlog.is_configured(),
    }


class _Host:
    """What an application installed before starting blockmon: two root handlers (a plain
    formatter and structlog's ProcessorFormatter), its root level, its own structlog."""

    def __init__(self) -> None:
        self.plain, self.json = io.StringIO(), io.StringIO()
        plain = logging.StreamHandler(self.plain)
        plain.setFormatter(logging.Formatter("app %(levelname)s %(name)s: %(message)s"))
        as_json = logging.StreamHandler(self.json)
        as_json.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ]
            )
        )
        self.handlers = [plain, as_json]
        self.printed = io.StringIO()

    def install(self) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.addHandler(handler)
        root.setLevel(logging.WARNING)
        logging.getLogger("app.db").setLevel(logging.DEBUG)
        structlog.configure(
            processors=[structlog.processors.KeyValueRenderer()],
            logger_factory=structlog.PrintLoggerFactory(self.printed),
        )

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.json.getvalue().splitlines() if line]


@pytest.fixture
def host() -> Iterator[_Host]:
    """The application's logging, installed; everything it changed restored afterwards."""
    root, own = logging.getLogger(), logging.getLogger("blockmon")
    saved = (root.level, own.level, logging.getLogger("app.db").level)
    configured, config = structlog.is_configured(), structlog.get_config()
    app = _Host()
    app.install()
    try:
        yield app
    finally:
        for handler in app.handlers:
            root.removeHandler(handler)
        root.setLevel(saved[0])
        own.setLevel(saved[1])
        logging.getLogger("app.db").setLevel(saved[2])
        structlog.contextvars.clear_contextvars()
        if configured:
            structlog.configure(**config)
        else:
            structlog.reset_defaults()


def _container(config: dict[str, Any], settings: Settings, **postgres: Any) -> ApplicationContainer:
    config["postgres"] = {**config["postgres"], "url": _url_with_secret(settings), **postgres}
    container = ApplicationContainer()
    container.config.from_dict(config)
    return container


async def test_host_logging_untouched_and_receives_blockmon_events_redacted(
    host: _Host, blockmon_config: dict[str, Any], blockmon_settings: Settings
) -> None:
    before, own_level = _state(), logging.getLogger("blockmon").level
    # The application's request context happens to hold a DSN: blockmon masks it too.
    structlog.contextvars.bind_contextvars(dsn=_url_with_secret(blockmon_settings))
    container = _container(blockmon_config, blockmon_settings)
    async with Lifespan(container):
        engine = await container.postgres.engine()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert _state() == before
        structlog.get_logger("app").info("app ready")
    assert _state() == before
    # blockmon's own loggers get back the level they had before it started
    assert logging.getLogger("blockmon").level == own_level

    plain = host.plain.getvalue()
    assert "app INFO blockmon.postgres: postgres connected component=postgres" in plain, plain
    connected = next(e for e in host.events() if e["event"] == "postgres connected")
    assert connected["logger"] == "blockmon.postgres" and connected["level"] == "info"
    assert ":***@" in connected["dsn"]
    # the application's own structlog events still go where it configured them
    assert "event='app ready'" in host.printed.getvalue()
    assert "app ready" not in plain
    for output in (plain, host.json.getvalue(), host.printed.getvalue()):
        assert SECRET not in output


async def test_echo_reaches_host_handlers_redacted_never_stdout(
    host: _Host,
    blockmon_config: dict[str, Any],
    blockmon_settings: Settings,
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = _state()
    container = _container(blockmon_config, blockmon_settings, echo=True)
    async with Lifespan(container):
        engine = await container.postgres.engine()
        async with engine.connect() as conn:
            # a password as a literal (an application rotating a role's password) and bound
            await conn.execute(text(f"SELECT '{SECRET}' AS literal, :bound"), {"bound": BOUND})
    assert _state() == before

    plain = host.plain.getvalue()
    assert "app INFO sqlalchemy.engine.Engine.blockmon: SELECT '***' AS literal, $1" in plain
    assert "SQL parameters hidden" in plain
    assert SECRET not in plain and BOUND not in plain
    out, err = capfd.readouterr()
    assert out == ""
    assert SECRET not in err and BOUND not in err


async def test_configure_root_takes_over_the_root_logger(
    host: _Host,
    blockmon_config: dict[str, Any],
    blockmon_settings: Settings,
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = list(root.handlers)
    blockmon_config["log"] = {"level": "info", "format": "json", "configure_root": True}
    container = _container(blockmon_config, blockmon_settings)
    try:
        async with Lifespan(container):
            assert root.level == logging.INFO
            [own] = [h for h in root.handlers if h not in saved]
            assert own.get_name() == "blockmon"
            logging.getLogger("app.db").warning("retrying %s", _url_with_secret(blockmon_settings))
    finally:
        root.handlers[:] = saved
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    retry = next(line for line in lines if line["logger"] == "app.db")
    assert retry["level"] == "warning" and ":***@" in retry["event"]
    assert SECRET not in json.dumps(lines)


def test_script_application_keeps_its_logging(
    blockmon_config: dict[str, Any], blockmon_settings: Settings, tmp_path: Path
) -> None:
    """examples/host_logging.py, run as a user would, against this test's servers."""
    prefix = blockmon_config["redis"]["key_prefix"]
    (tmp_path / "config.yml").write_text(f"redis:\n  key_prefix: '{prefix}'\n")
    done = _run([sys.executable, str(SCRIPT)], _environment(blockmon_settings), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert json.loads(done.stdout) == {
        "untouched_after_start": True,
        "untouched_after_shutdown": True,
    }
    assert "app INFO blockmon.postgres: postgres connected component=postgres" in done.stderr
    assert "event='app ready'" in done.stderr
    assert SECRET not in done.stdout + done.stderr


async def test_cli_health_json_with_echo_keeps_sql_off_stdout(
    blockmon_config: dict[str, Any], blockmon_settings: Settings, tmp_path: Path
) -> None:
    """``blockmon health --json`` with ``postgres.echo: true``: JSON on stdout, the SQL as
    blockmon's log lines on stderr, the password nowhere."""
    prefix = blockmon_config["redis"]["key_prefix"]
    (tmp_path / "config.yml").write_text(
        f"log:\n  format: json\npostgres:\n  echo: true\nredis:\n  key_prefix: '{prefix}'\n"
    )
    argv = [BLOCKMON, "-c", "config.yml", "health", "--json"]
    done = await asyncio.to_thread(_run, argv, _environment(blockmon_settings), tmp_path)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["status"] in ("pass", "warn", "fail")
    logged = [json.loads(line) for line in done.stderr.splitlines() if line]
    sql = [e["event"] for e in logged if e["logger"] == "sqlalchemy.engine.Engine.blockmon"]
    assert "SELECT 1" in sql, done.stderr[-3000:]  # the health check's ping
    assert any("SQL parameters hidden" in e for e in sql)
    assert SECRET not in done.stdout + done.stderr


def test_a_traceback_in_a_blockmon_event_reaches_the_host_as_redacted_text(host: _Host) -> None:
    from blockmon.config.log import get_logger

    try:
        raise ConnectionError(f"cannot reach postgresql://postgres:{SECRET}@db:5432/app")
    except ConnectionError:
        get_logger("blockmon.postgres").exception("postgres connection lost")
    plain = host.plain.getvalue()
    assert "app ERROR blockmon.postgres: postgres connection lost" in plain
    assert "Traceback (most recent call last)" in plain and "postgres:***@db" in plain
    [event] = host.events()
    assert "ConnectionError" in event["exception"]
    assert SECRET not in plain + host.json.getvalue()


async def test_host_at_debug_gets_no_password_from_the_libraries_beneath(
    host: _Host, blockmon_config: dict[str, Any], blockmon_settings: Settings
) -> None:
    """Without configure_root the libraries' records reach the host unredacted: with the
    root at DEBUG, none of them carries the password."""
    logging.getLogger().setLevel(logging.DEBUG)
    blockmon_config["log"] = {"level": "debug"}
    container = _container(blockmon_config, blockmon_settings)
    async with Lifespan(container):
        engine = await container.postgres.engine()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT :bound"), {"bound": BOUND})
        await (await container.redis.client()).ping()
    plain = host.plain.getvalue()
    assert "app INFO blockmon.postgres: postgres connected" in plain
    assert SECRET not in plain and BOUND not in plain
