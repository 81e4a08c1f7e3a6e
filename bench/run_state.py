"""The state every benchmark case of a run shares: a database created for the run
(its tables filled once, dropped after it) and a Redis key prefix whose keys are
deleted at the end. The shared servers are never flushed and nothing of anyone
else's is touched."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from blockmon.config.file import load_settings
from blockmon.config.settings import Settings
from blockmon.provisioning.servers import connect
from blockmon.testing import create_database, delete_keys, drop_database

ITEMS = 10_000  # rows in bench_items; primary keys 1..ITEMS
REDIS_KEYS = 1_000  # keys preloaded with 100-byte values
VALUE = b"v" * 100

SCHEMA = [
    "CREATE TABLE bench_items (id int PRIMARY KEY, name text NOT NULL, value bigint NOT NULL)",
    f"INSERT INTO bench_items SELECT g, 'item-' || g, g FROM generate_series(1, {ITEMS}) g",
    "CREATE TABLE bench_log (id bigserial PRIMARY KEY, item_id int NOT NULL, note text NOT NULL)",
    "ANALYZE bench_items",
]


@dataclass(frozen=True)
class RunState:
    run_id: str
    settings: Settings  # postgres.database and redis.key_prefix point at the run's own
    base: Settings

    def config(self, **postgres: Any) -> dict[str, Any]:
        """A container configuration for this run, with postgres settings overridden."""
        data = self.settings.model_dump()
        data["postgres"].update(postgres)
        return data

    @property
    def prefix(self) -> str:
        return self.settings.redis.key_prefix


@asynccontextmanager
async def run_state() -> AsyncIterator[RunState]:
    base = load_settings()
    run_id = secrets.token_hex(4)
    name = f"blockmon_bench_{run_id}"
    pg = await create_database(base.postgres, name)
    redis = base.redis.model_copy(update={"key_prefix": f"blockmon-bench:{run_id}:"})
    log = base.log.model_copy(update={"level": "info"})
    settings = base.model_copy(update={"postgres": pg, "redis": redis, "log": log})
    try:
        conn = await connect(pg)
        try:
            # Measure the layers, not the disk: commits need not wait for WAL flushes here.
            await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
            for sql in SCHEMA:
                await conn.execute(sql)
        finally:
            await conn.close()
        yield RunState(run_id, settings, base)
    finally:
        await drop_database(base.postgres, name)
        await delete_keys(settings, redis.key_prefix)
