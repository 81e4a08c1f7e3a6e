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

from blockmon.config.settings import PostgresSettings
from blockmon.postgres.engine import engine_url

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "alert_rules"
RULE = {"user_id": 1, "description": None, "rule_type": "threshold", "is_active": True}
EXPECTED = [
    {"id": 1, "name": "cpu-high", **RULE, "conditions": {"metric": "cpu.load", "above": 0.9}},
    {"id": 2, "name": "disk-full", **RULE, "conditions": {"metric": "disk.used", "above": 0.95}},
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
    from alert_rules.services import user_rules_key

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
            assert await cache.get_json(user_rules_key(1)) == EXPECTED
            left = await cache.ttl(user_rules_key(1))
            assert left is not None and 0 < left <= 30
            service = await container.rule_service()
            await service.add_rule(1, "mem-high", "threshold", {"metric": "mem.used"})
            assert await cache.exists(user_rules_key(1)) == 0  # a write invalidates
            assert [r["name"] for r in await service.rules_of(1)] == [
                "cpu-high",
                "disk-full",
                "mem-high",
            ]
            assert (await service.rule(2))["name"] == "disk-full"  # type: ignore[index]
            assert await service.rule(99) is None
            assert await service.rules_of(99) == []
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


async def test_example_web_app_shares_blockmon_container(
    example_path: None, blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings
) -> None:
    """``create_app`` builds on the container it is given (no second engine or client), and
    the composed app keeps the monitoring routes in front of the example's."""
    import httpx
    from alert_rules.web import create_app

    from blockmon.containers import ApplicationContainer
    from blockmon.migrations.api import upgrade
    from blockmon.monitoring.mount import combine

    blockmon = ApplicationContainer()
    blockmon.config.from_dict({**blockmon_config, "postgres": blockmon_fresh_database.model_dump()})
    async with container_lifespan(blockmon):
        await upgrade(blockmon)
        app = create_app(blockmon)
        try:
            shared = await app.state.container.blockmon.postgres.engine()
            assert shared is await blockmon.postgres.engine()
            composed = combine(await blockmon.monitoring.app(), app)
            transport = httpx.ASGITransport(app=composed)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                assert (await client.get("/livez")).json() == {"status": "pass"}
                assert "POST /users" in (await client.get("/")).json()["endpoints"]
                user = await client.post("/users", json={"telegram_id": 9, "username": "ada"})
                assert user.status_code == 201 and user.json() == {"id": 1}
                again = await client.post("/users", json={"telegram_id": 9, "username": "lin"})
                assert again.json() == {"id": 1}  # one user per Telegram id
                bad = await client.post("/users", content=b"{")
                assert bad.status_code == 400 and bad.json()["error"].startswith("body:")
                wrong = await client.post("/users", json={"telegram_id": "nine"})
                assert wrong.status_code == 422 and wrong.json()["error"].startswith("telegram_id")
                assert (await client.get("/rules/1")).status_code == 404  # a miss: not cached
                rule = {"name": "cpu", "rule_type": "threshold", "conditions": {"above": 1}}
                created = await client.post("/users/1/rules", json=rule)
                assert created.status_code == 201 and created.json()["id"] == 1
                got = await client.get("/rules/1")  # found at once once created
                assert got.status_code == 200 and got.json() == created.json()
                assert (await client.get("/users/1/rules")).json() == [created.json()]
                assert (await client.get("/metrics")).status_code == 200
        finally:
            app.state.container.unwire()
