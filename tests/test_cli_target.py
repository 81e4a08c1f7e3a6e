"""``blockmon up`` and ``blockmon health`` say which configuration file they read and
which servers they talk to, with passwords masked."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import yaml

from blockmon.config.settings import RedisSettings, Settings
from blockmon.provisioning.servers import postgres_address, redis_target
from blockmon.testing import drop_database
from tests.test_migrations_cli import blockmon, dsn, environ

SECRET = "t4rget-Pa55word"


def redis_section(redis: RedisSettings) -> str:
    """The per-run Redis as config: host and port, or the embedded server's socket URL."""
    if redis.url is not None:
        return f"redis:\n  url: {redis.url.get_secret_value()}\n"
    return f"redis:\n  host: {redis.host}\n  port: {redis.port}\n"


def test_health_and_up_print_the_config_file_and_servers(
    tmp_path: Path, blockmon_settings: Settings
) -> None:
    redis = blockmon_settings.redis
    config = tmp_path / "service.yml"
    config.write_text(f"{redis_section(redis)}monitoring:\n  details: always\n")
    pg = blockmon_settings.postgres
    url = dsn(pg, password=SECRET) if pg.password is None else dsn(pg)
    env = environ(DATABASE_URL=url)
    for command in (["health"], ["up", "--no-embedded"]):
        result = blockmon(*command, "-c", str(config), env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"blockmon: config: {config.resolve()}" in lines, result.stdout
        where = f"{postgres_address(pg)}/{pg.database}"
        assert any(
            line.startswith("blockmon: postgres: ") and line.endswith(where) for line in lines
        ), result.stdout
        assert f"blockmon: redis: {redis_target(redis)}" in lines, result.stdout
        assert SECRET not in result.stdout + result.stderr


def test_without_a_config_file_health_says_so(tmp_path: Path) -> None:
    env = environ()
    env.pop("BLOCKMON_CONFIG")
    result = blockmon("health", env=env, cwd=tmp_path)
    assert "blockmon: config: none found (defaults and environment)" in result.stdout


async def test_up_and_config_show_name_the_database_of_the_url(
    tmp_path: Path, blockmon_settings: Settings
) -> None:
    """``DATABASE_URL=.../<name>``: ``config show`` lists ``postgres.database: <name>``
    and ``up`` says it created ``<name>`` (once: the default name ``blockmon``)."""
    pg = blockmon_settings.postgres
    name = f"bm_url_{secrets.token_hex(5)}"
    config = tmp_path / "service.yml"
    config.write_text(
        f"postgres:\n  database: not_this_one\n{redis_section(blockmon_settings.redis)}"
    )
    env = environ(DATABASE_URL=dsn(pg, database=name))
    try:
        shown = blockmon("config", "show", "-c", str(config), env=env, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert yaml.safe_load(shown.stdout)["postgres"]["database"] == name
        as_json = blockmon("config", "show", "--json", "-c", str(config), env=env, cwd=tmp_path)
        assert json.loads(as_json.stdout)["postgres"]["database"] == name
        up = blockmon("up", "--no-embedded", "-c", str(config), env=env, cwd=tmp_path)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"blockmon: created database {name!r}" in up.stdout.splitlines(), up.stdout
        assert "'blockmon'" not in up.stdout and "not_this_one" not in up.stdout
    finally:
        await drop_database(pg, name)


def test_config_show_says_which_file_it_read_on_stderr(tmp_path: Path) -> None:
    config = tmp_path / "service.yml"
    config.write_text("postgres:\n  pool_size: 7\n")
    result = blockmon("config", "show", "-c", str(config), env=environ(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"blockmon: config: {config.resolve()}\n"
    assert yaml.safe_load(result.stdout)["postgres"]["pool_size"] == 7  # stdout: YAML only
    env = environ()
    env.pop("BLOCKMON_CONFIG")
    none = blockmon("config", "show", "--json", env=env, cwd=tmp_path)
    assert none.stderr == "blockmon: config: none found (defaults and environment)\n"
    assert json.loads(none.stdout)["postgres"]["pool_size"] == 10
