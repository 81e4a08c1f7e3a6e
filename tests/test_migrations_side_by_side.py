"""An application's Alembic chain beside blockmon's in one database, driven as typed:
``blockmon db ...`` and the application's plain ``alembic ...``, in either order; a
the application alone when it does not ask for blockmon's alerting tables; health reading
the chains in use."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from blockmon.config.settings import PostgresSettings, RedisSettings, Settings
from tests.test_migrations_cli import (
    BIN,
    ROOT,
    TIMEOUT,
    blockmon,
    dsn,
    environ,
    fetch,
    one_error_line,
    public_tables,
)

EXAMPLE = ROOT / "examples" / "fastapi_service"
# each chain's version table and the checksums of its applied revisions beside it
APP_BOOKKEEPING = {"alembic_version", "alembic_version_checksums"}
BLOCKMON_TABLES = {
    "users", "alert_rules", "alerts", "blockmon_alembic_version", "blockmon_alembic_version_checksums"
}  # fmt: skip
APP_TABLES = {"accounts"} | APP_BOOKKEEPING


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A copy of the example service (its config.yml, alembic.ini, migrations)."""
    copy = tmp_path / "service"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    return copy


def env_for(
    database: PostgresSettings, service: Path, redis: RedisSettings | None = None
) -> dict[str, str]:
    env = environ(DATABASE_URL=dsn(database), PYTHONPATH=str(service))
    env.pop("BLOCKMON_CONFIG")  # the service's own ./config.yml, as a user runs it
    if redis is not None and redis.url is not None:  # an embedded Redis: its socket
        env["REDIS_URL"] = redis.url.get_secret_value()
    return env


def alembic(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "alembic"), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


async def versions(database: PostgresSettings, table: str) -> list[str]:
    return [r[0] for r in await fetch(database, f"SELECT version_num FROM {table}")]


def with_alerting_tables(service: Path) -> None:
    """The service asks for blockmon's alerting tables (``migrations.alerting_tables``)."""
    config = service / "config.yml"
    config.write_text(config.read_text() + "  alerting_tables: true\n")


@pytest.mark.slow
@pytest.mark.parametrize("blockmon_first", [True, False], ids=["blockmon-first", "app-first"])
async def test_both_chains_in_either_order(
    blockmon_fresh_database: PostgresSettings,
    blockmon_settings: Settings,
    service: Path,
    blockmon_first: bool,
) -> None:
    with_alerting_tables(service)
    env = env_for(blockmon_fresh_database, service, blockmon_settings.redis)
    steps = [
        lambda: blockmon("db", "upgrade", "head", env=env, cwd=service),
        lambda: alembic("upgrade", "head", env=env, cwd=service),
    ]
    for step in steps if blockmon_first else steps[::-1]:
        await asyncio.to_thread(lambda step=step: ok(step()))
    assert await public_tables(blockmon_fresh_database) == BLOCKMON_TABLES | APP_TABLES
    assert await versions(blockmon_fresh_database, "blockmon_alembic_version") == ["0001"]
    assert await versions(blockmon_fresh_database, "alembic_version") == ["a001"]

    ok(alembic("check", env=env, cwd=service))  # the app's models only: blockmon's unseen
    ok(blockmon("db", "check", env=env, cwd=service))  # blockmon's only: accounts unseen
    checked = ok(blockmon("db", "--alembic-config", "alembic.ini", "check", env=env, cwd=service))
    assert "schema matches the models and is at head" in checked
    current = ok(blockmon("db", "current", "--alembic-config", "alembic.ini", env=env, cwd=service))
    assert "schema at a001, at head" in current
    assert "schema at 0001, at head" in ok(blockmon("db", "current", env=env, cwd=service))

    # Autogenerate in the app's env writes an empty revision: blockmon's tables unseen.
    ok(alembic("revision", "--autogenerate", "-m", "probe", env=env, cwd=service))
    (generated,) = (service / "migrations" / "versions").glob("*_probe.py")
    body = generated.read_text()
    assert "op.create_table" not in body and "op.drop_table" not in body, body

    health = ok(blockmon("health", "--json", env=env, cwd=service))
    assert '"postgres:schema"' in health and '"status": "pass"' in health
    assert '"app": "a001"' in health and '"blockmon": "0001"' in health


async def test_an_application_gets_no_blockmon_tables(
    blockmon_fresh_database: PostgresSettings, blockmon_settings: Settings, service: Path
) -> None:
    """Without ``alerting_tables``, ``blockmon db`` and ``alembic`` both run the app's
    chain (``migrations.heads_from``) and health compares that chain alone."""
    env = env_for(blockmon_fresh_database, service, blockmon_settings.redis)
    assert "schema at a001, at head" in ok(blockmon("db", "upgrade", env=env, cwd=service))
    ok(alembic("upgrade", "head", env=env, cwd=service))
    assert await public_tables(blockmon_fresh_database) == APP_TABLES
    health = ok(blockmon("health", "--json", env=env, cwd=service))
    assert '"postgres:schema"' in health and '"app": "a001"' in health
    assert '"blockmon"' not in health and '"status": "warn"' not in health


async def test_blockmon_db_drives_the_apps_chain(
    blockmon_fresh_database: PostgresSettings, service: Path
) -> None:
    env = env_for(blockmon_fresh_database, service)
    up = ok(blockmon("db", "--alembic-config", "alembic.ini", "upgrade", env=env, cwd=service))
    assert "schema at a001, at head" in up
    assert await public_tables(blockmon_fresh_database) == APP_TABLES
    ok(blockmon("db", "downgrade", "base", "--alembic-config", "alembic.ini", env=env, cwd=service))
    assert await public_tables(blockmon_fresh_database) == APP_BOOKKEEPING


@pytest.mark.parametrize("through", ["alembic", "blockmon-db"])
async def test_include_blockmon_runs_both_from_the_apps_alembic(
    blockmon_fresh_database: PostgresSettings, service: Path, through: str
) -> None:
    env_py = service / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "run(context, target_metadata=metadata)",
            "run(context, target_metadata=metadata, include_blockmon=True)",
        )
    )
    env = env_for(blockmon_fresh_database, service)
    if through == "alembic":
        ok(alembic("upgrade", "head", env=env, cwd=service))
    else:
        ok(blockmon("db", "--alembic-config", "alembic.ini", "upgrade", env=env, cwd=service))
    assert await public_tables(blockmon_fresh_database) == BLOCKMON_TABLES | APP_TABLES
    ok(alembic("check", env=env, cwd=service))
    ok(blockmon("db", "check", "--alembic-config", "alembic.ini", env=env, cwd=service))


def test_a_wrong_heads_from_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("migrations:\n  heads_from: missing/alembic.ini\n")
    for command in (["health"], ["up", "--no-embedded"], ["config", "show"]):
        result = blockmon(*command, "-c", str(config), env=environ(), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        one_error_line(result, "migrations.heads_from: no such file:", "missing/alembic.ini")


def test_a_wrong_alembic_config_is_a_usage_error(tmp_path: Path) -> None:
    result = blockmon("db", "--alembic-config", "nope.ini", "current", env=environ(), cwd=tmp_path)
    assert result.returncode == 2
    one_error_line(result, "--alembic-config: no such file:", "nope.ini")
