"""blockmon.testing for applications: server-less unit tests with fakeredis, and the
application's migrations applied to the per-run database (a wrong path stops the run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from blockmon import ApplicationContainer, Cache

TIMEOUT = 300


async def test_unit_container_caches_in_fakeredis_without_starting_anything(
    blockmon_unit_container: ApplicationContainer, blockmon_fake_redis: Any
) -> None:
    cache: Cache = await blockmon_unit_container.redis.cache()
    await cache.set_json("rule:1", {"a": 1}, ttl=30)
    assert await cache.get_json("rule:1") == {"a": 1}
    assert await blockmon_fake_redis.keys() == [b"blockmon:rule:1"]  # in the fake, prefixed
    assert not blockmon_unit_container.postgres.engine.initialized  # PostgreSQL untouched
    assert not blockmon_unit_container.monitoring.health.initialized


def test_unit_container_tears_down_whether_or_not_a_resource_was_awaited(
    tmp_path: Path,
) -> None:
    """An application's own run: a test that awaits nothing, then one that awaits
    ``redis.cache()``; both pass and neither errors at teardown."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["blockmon.testing"]\n')
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_app.py").write_text(
        "async def test_nothing_awaited(blockmon_unit_container):\n"
        "    assert blockmon_unit_container.redis.cache is not None\n\n"
        "async def test_cache_awaited(blockmon_unit_container):\n"
        "    cache = await blockmon_unit_container.redis.cache()\n"
        "    await cache.set_json('k', 1, ttl=30)\n"
        "    assert await cache.get_json('k') == 1\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "error" not in result.stdout, result.stdout


def test_a_wrong_alembic_config_stops_the_run_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["blockmon.testing"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nblockmon_alembic_config = nope/alembic.ini\n")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert "blockmon_alembic_config: no such file:" in result.stderr
    assert "nope/alembic.ini" in result.stderr and "Traceback" not in result.stderr
