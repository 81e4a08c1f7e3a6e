"""Errors outside a statement's ``do_execute`` still count: they reach the error metrics
through the dialect's wrapped commit and connect (`blockmon.postgres.execution`), as
they did through ``handle_error`` listeners, and the pool's ping (``pre_ping``)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text

from blockmon.testing.servers import PostgresServer
from tests.monitoring.support import http, merged, running
from tests.monitoring.test_metrics import scrape, value


async def test_an_error_at_commit_counts(blockmon_config: dict) -> None:
    async with running(blockmon_config) as container, http(container) as client:
        engine = await container.postgres.engine()
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS deferred_fk_child, deferred_fk_parent"))
            await conn.execute(text("CREATE TABLE deferred_fk_parent (id int PRIMARY KEY)"))
            await conn.execute(
                text(
                    "CREATE TABLE deferred_fk_child (parent int REFERENCES deferred_fk_parent"
                    " DEFERRABLE INITIALLY DEFERRED)"
                )
            )
        before = await scrape(client)
        with pytest.raises(exc.IntegrityError):
            async with engine.begin() as conn:  # the violation surfaces at COMMIT
                await conn.execute(text("INSERT INTO deferred_fk_child VALUES (1)"))
        after = await scrape(client)
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE deferred_fk_child, deferred_fk_parent"))
    moved = value(after, "postgres_errors_total", type="integrity") - value(
        before, "postgres_errors_total", type="integrity"
    )
    assert moved == 1
    inserted = value(after, "postgres_queries_total", operation="insert", status="success")
    assert (
        inserted - value(before, "postgres_queries_total", operation="insert", status="success")
        == 1
    )


async def test_a_failed_connect_counts(blockmon_config: dict, pg_server: PostgresServer) -> None:
    # the throwaway server's settings (host:port), also where the per-run one is a socket URL
    config = merged(blockmon_config, postgres=pg_server.settings("blockmon_no_such_database"))
    async with running(config, schema_probe=False) as container, http(container) as client:
        engine = await container.postgres.engine()
        before = await scrape(client)
        with pytest.raises(exc.DBAPIError):
            async with engine.connect():
                pass
        after = await scrape(client)

    def errors(samples: dict) -> float:
        return sum(v for (name, _), v in samples.items() if name == "postgres_errors_total")

    assert errors(after) - errors(before) == 1
