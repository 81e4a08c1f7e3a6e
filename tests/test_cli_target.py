"""``blockmon up`` and ``blockmon health`` say which configuration file they read and
which servers they talk to, with passwords masked."""

from __future__ import annotations

from pathlib import Path

from blockmon.config.settings import Settings
from tests.test_migrations_cli import blockmon, dsn, environ

SECRET = "t4rget-Pa55word"


def test_health_and_up_print_the_config_file_and_servers(
    tmp_path: Path, blockmon_settings: Settings
) -> None:
    redis = blockmon_settings.redis
    config = tmp_path / "service.yml"
    config.write_text(
        f"redis:\n  host: {redis.host}\n  port: {redis.port}\nmonitoring:\n  details: always\n"
    )
    pg = blockmon_settings.postgres
    url = dsn(pg, password=SECRET) if pg.password is None else dsn(pg)
    env = environ(DATABASE_URL=url)
    for command in (["health"], ["up", "--no-embedded"]):
        result = blockmon(*command, "-c", str(config), env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"blockmon: config: {config.resolve()}" in lines, result.stdout
        where = f"{pg.host}:{pg.port}/{pg.database}"
        assert any(
            line.startswith("blockmon: postgres: ") and line.endswith(where) for line in lines
        ), result.stdout
        assert f"blockmon: redis: {redis.host}:{redis.port}/{redis.db}" in lines
        assert SECRET not in result.stdout + result.stderr


def test_without_a_config_file_health_says_so(tmp_path: Path) -> None:
    env = environ()
    env.pop("BLOCKMON_CONFIG")
    result = blockmon("health", env=env, cwd=tmp_path)
    assert "blockmon: config: none found (defaults and environment)" in result.stdout
