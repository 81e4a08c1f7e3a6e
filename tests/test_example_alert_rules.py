"""The alert-rule example runs end to end: in process (wired, with blockmon's fixtures)
and as ``python -m alert_rules`` configured only through the environment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from blockmon.postgres import engine_url
from blockmon.settings import PostgresSettings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "alert_rules"
EXPECTED = [
    {"id": 1, "name": "cpu-high", "metric": "cpu.load", "threshold": 0.9, "enabled": True},
    {"id": 2, "name": "disk-full", "metric": "disk.used", "threshold": 0.95, "enabled": True},
]


@pytest.fixture
def example_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield
    finally:
        sys.path.remove(str(EXAMPLE))
        for name in [m for m in sys.modules if m == "alert_rules" or m.startswith("alert_rules.")]:
            del sys.modules[name]


async def test_example_in_process(
    example_path: None,
    blockmon_config: dict[str, Any],
    blockmon_fresh_database: PostgresSettings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from alert_rules.containers import Container
    from alert_rules.main import serve
    from alert_rules.services import ENABLED_KEY

    container = Container()
    container.config.from_dict(
        {
            "blockmon": {**blockmon_config, "postgres": blockmon_fresh_database.model_dump()},
            "alerts": {"cache_ttl": 30},
        }
    )
    try:
        await serve(container)
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line) for line in lines] == [EXPECTED, EXPECTED]

        # the second read came from Redis: the cached copy is there, with its TTL
        async with container_lifespan(container):
            cache = await container.blockmon.redis.cache()
            assert await cache.get_json(ENABLED_KEY) == EXPECTED
            left = await cache.ttl(ENABLED_KEY)
            assert left is not None and 0 < left <= 30
            service = await container.rule_service()
            await service.add_rule("mem-high", "mem.used", 0.8)
            assert await cache.exists(ENABLED_KEY) == 0  # a write invalidates
            assert [r["name"] for r in await service.enabled_rules()] == [
                "cpu-high",
                "disk-full",
                "mem-high",
            ]
            assert (await service.rule(2))["name"] == "disk-full"  # type: ignore[index]
            assert await service.rule(99) is None
    finally:
        container.unwire()


def container_lifespan(container: Any) -> Any:
    from blockmon.lifespan import Lifespan

    return Lifespan(container)


async def test_example_as_a_program(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings, tmp_path: Path
) -> None:
    config = tmp_path / "blockmon.yml"
    config.write_text(
        yaml.safe_dump({"redis": {"key_prefix": blockmon_config["redis"]["key_prefix"]}})
    )
    redis = blockmon_config["redis"]
    redis_url = (
        redis["url"].get_secret_value()
        if redis["url"]
        else f"redis://{redis['host']}:{redis['port']}/{redis['db']}"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))},
        "BLOCKMON_CONFIG": str(config),
        "DATABASE_URL": engine_url(blockmon_fresh_database)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
        "BLOCKMON_LOG_LEVEL": "warning",
        "PYTHONPATH": str(EXAMPLE),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "alert_rules"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [EXPECTED, EXPECTED]
