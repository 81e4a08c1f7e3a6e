"""Every rule and dashboard expression against a real Prometheus scraping two blockmon
workers under load: one with a read replica and a Redis with maxmemory, one on a Redis
Cluster. Each expression must parse and return at least one series; the dashboard may
use only metric names that blockmon exports (or that the rules record)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import exc, text

from blockmon.testing.servers import ClusterDeployment, PostgresServer, RedisServer
from tests.deploy.live import prometheus, query, serving
from tests.deploy.render import render
from tests.deploy.rules import dashboard_exprs, expressions, metric_names, panels, recorded, rules
from tests.monitoring.support import merged, running
from tests.test_postgres_topologies import pg_config
from tests.test_redis_topologies import cluster_config

pytestmark = pytest.mark.slow

DEADLINE = 60.0  # seconds for every expression to return series: generous on 2 busy cores
FAST = {"health_interval": 0.5, "details": "always"}
DRAWN = 15.0  # seconds of scraped data, at least, in the rendered panels


async def load(container: Any, stop: asyncio.Event) -> None:
    """Statements (some failing), replica reads, cache hits and misses, until ``stop``."""
    engine = await container.postgres.engine()
    router = await container.postgres.router()
    cache = await container.redis.cache()
    round_ = 0
    while not stop.is_set():
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        if round_ % 4 == 0:
            with contextlib.suppress(exc.ProgrammingError):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT * FROM no_such_table"))
        if router.readers:
            async with router.read_connection() as conn:
                await conn.execute(text("SELECT 1"))
        await cache.set(f"load-{round_ % 20}", "x", ttl=60)
        await cache.get(f"load-{round_ % 20}")
        await cache.get(f"missing-{round_}")
        round_ += 1
        await asyncio.sleep(0.05)


async def test_every_rule_and_dashboard_expression_returns_series(
    blockmon_config: dict[str, Any],
    pg_primary: PostgresServer,
    pg_replica: PostgresServer,
    redis_cluster: ClusterDeployment,
) -> None:
    replicated = merged(
        blockmon_config | {"postgres": pg_config(pg_primary, replicas=[pg_replica.address])},
        monitoring=FAST,
    )
    clustered = merged(blockmon_config, redis=cluster_config(redis_cluster), monitoring=FAST)
    stop = asyncio.Event()
    with RedisServer(extra=["--maxmemory", "1gb"]) as limited:
        replicated["redis"] = replicated["redis"] | limited.settings()
        async with (
            running(replicated, schema_probe=False) as first,
            running(clustered) as second,
            serving(first) as first_target,
            serving(second) as second_target,
        ):
            loads = [asyncio.create_task(load(c, stop)) for c in (first, second)]
            try:
                with prometheus([first_target, second_target]) as url:
                    scraping = time.monotonic()
                    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                        await _every_expression_returns_series(client)
                        await _rules_evaluate_without_error(client)
                        await _errors_alert_pending(client, [first_target, second_target])
                        await _dashboard_uses_exported_names(client)
                        await asyncio.sleep(max(0.0, scraping + DRAWN - time.monotonic()))
                        await _rendered(client)
            finally:
                stop.set()
                await asyncio.gather(*loads)


async def _every_expression_returns_series(client: httpx.AsyncClient) -> None:
    pending = expressions()
    assert len(pending) == len(rules()) + len(dashboard_exprs())
    deadline = time.monotonic() + DEADLINE
    while pending:
        for name, expr in list(pending.items()):
            if await query(client, expr):
                del pending[name]
        assert time.monotonic() < deadline, f"no series after {DEADLINE}s: {sorted(pending)}"
        await asyncio.sleep(1)


async def _rules_evaluate_without_error(client: httpx.AsyncClient) -> None:
    groups = (await client.get("/api/v1/rules")).json()["data"]["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert len(loaded) == len(rules())
    assert {name: rule["health"] for name, rule in loaded.items() if rule["health"] != "ok"} == {}


async def _errors_alert_pending(client: httpx.AsyncClient, targets: list[str]) -> None:
    """A quarter of the load's rounds fail a statement: the error-ratio alert goes pending
    (its `for: 5m` keeps it from firing within the test) on both workers."""
    expr = 'ALERTS{alertname="BlockmonPostgresStatementErrors", alertstate="pending"}'
    deadline = time.monotonic() + DEADLINE
    while sorted(s["metric"]["instance"] for s in await query(client, expr)) != sorted(targets):
        assert time.monotonic() < deadline, f"{expr}: not pending on {targets}"
        await asyncio.sleep(1)


async def _dashboard_uses_exported_names(client: httpx.AsyncClient) -> None:
    """Names Prometheus holds came from the two blockmon targets, but for its own
    series (`up`, `scrape_*`, `ALERTS*`) and the recording rules' results."""
    names = set((await client.get("/api/v1/label/__name__/values")).json()["data"])
    own = {n for n in names if n == "up" or n.startswith(("scrape_", "ALERTS"))}
    exported = names - own - recorded()
    assert exported and all(n.startswith(("postgres_", "redis_", "blockmon_")) for n in exported)
    used = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    assert used - exported - recorded() - {"up"} == set()
    assert used & recorded(), "the dashboard reads the recording rules too"


async def _rendered(client: httpx.AsyncClient) -> None:
    """Every panel drawn from the data of this run; kept at $BLOCKMON_DASHBOARD_PNG
    when set (how docs/img/dashboard.png is made)."""
    with tempfile.TemporaryDirectory(prefix="blockmon-dashboard-") as folder:
        picture = Path(folder) / "dashboard.png"
        drawn = await render(client, panels(), picture)
        assert drawn == len(panels())
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        keep = os.environ.get("BLOCKMON_DASHBOARD_PNG")
        if keep:
            shutil.copyfile(picture, keep)
