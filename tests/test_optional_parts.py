"""PostgreSQL-only and Redis-only services: ``redis.enabled: false`` (or
``postgres.enabled: false``) starts no client (engine), registers no check, exposes no
samples for it, and needs no server; using it raises one `Disabled` error naming the
setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from blockmon import ApplicationContainer, Lifespan
from blockmon.errors import Disabled
from blockmon.health.model import Status
from tests.test_migrations_cli import blockmon, environ, one_error_line

NOWHERE = 1  # a port nothing listens on: a server that is off must not be needed


def _off(config: dict[str, Any], section: str) -> dict[str, Any]:
    part = {**config[section], "enabled": False, "url": None, "port": NOWHERE}
    return {**config, section: part}


async def _samples(container: ApplicationContainer) -> set[str]:
    exposed = await container.monitoring.exposed()
    return {s.name for family in exposed.collect() for s in family.samples}


async def test_a_postgresql_only_service(blockmon_config: dict[str, Any], migrated: None) -> None:
    container = ApplicationContainer()
    container.config.from_dict(_off(blockmon_config, "redis"))
    async with Lifespan(container):
        statements = await container.postgres.statements()
        assert await statements.scalar("SELECT 1") == 1
        report = await (await container.monitoring.health()).report(max_age=0)
        assert report.status == Status.PASS
        assert {r.component for r in report.results} == {"postgres", "postgres:schema"}
        samples = await _samples(container)
        assert not any(name.startswith(("redis_", "blockmon_cache_")) for name in samples)
        assert any(name.startswith("postgres_") for name in samples)
        cache = await container.redis.cache()
        with pytest.raises(Disabled, match=r"redis is turned off \(redis.enabled: false\)"):
            await cache.get("key")
        client = await container.redis.client()
        with pytest.raises(Disabled, match=r"redis\.enabled"):
            await client.ping()


async def test_a_redis_only_service(blockmon_config: dict[str, Any]) -> None:
    container = ApplicationContainer()
    container.config.from_dict(_off(blockmon_config, "postgres"))
    async with Lifespan(container):
        cache = await container.redis.cache()
        await cache.set("k", b"v", ttl=30)
        assert await cache.get("k") == b"v"
        report = await (await container.monitoring.health()).report(max_age=0)
        assert report.status == Status.PASS
        assert {r.component for r in report.results} == {"redis"}
        assert not any(name.startswith("postgres_") for name in await _samples(container))
        for name in ("statements", "transactions", "session_factory", "router", "engine"):
            provided = await getattr(container.postgres, name)()
            with pytest.raises(Disabled, match=r"postgres is turned off \(postgres.enabled"):
                provided.connect()


def test_the_cli_health_of_a_postgresql_only_service(
    blockmon_config: dict[str, Any], migrated: None, tmp_path: Path
) -> None:
    config = tmp_path / "config.yml"
    data = _off(blockmon_config, "redis")
    data["postgres"]["password"] = None  # the per-run server is trust
    config.write_text(yaml.safe_dump(_plain(data)))
    result = blockmon("health", "-c", str(config), env=environ(BLOCKMON_CONFIG=str(config)))
    assert result.returncode == 0, result.stderr
    assert "blockmon: redis: off (redis.enabled: false)" in result.stdout
    components = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert "redis" not in components and "postgres" in components


def test_a_bad_switch_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("redis:\n  enabled: sometimes\n")
    result = blockmon("config", "show", "-c", str(config), env=environ())
    assert result.returncode == 2
    one_error_line(result, "redis.enabled")


def _plain(value: Any) -> Any:
    """Settings dumped for YAML: secrets as text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    return value
