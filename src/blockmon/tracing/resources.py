"""The engine and client Resources, traced when ``tracing.enabled``.

Nothing here imports OpenTelemetry: with tracing off (the default) the ``otel`` extra
need not be installed and nothing is patched. With it on, `blockmon.tracing.instrument`
is imported on first use (the settings checked at load that it can be).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.settings import PostgresSettings, RedisSettings, TracingSettings
from blockmon.postgres.engine import engine_resource
from blockmon.redis.client import client_resource
from blockmon.redis.topology import RedisClient

CheckSpan = Callable[[str], AbstractContextManager[object]]


async def traced_engine_resource(
    settings: PostgresSettings, tracing: TracingSettings
) -> AsyncIterator[AsyncEngine]:
    """`engine_resource`, with a span per statement while it runs (SQLAlchemy's path and
    the `Statements` path alike: both reach PostgreSQL through asyncpg)."""
    async with asynccontextmanager(engine_resource)(settings) as engine:
        if not tracing.enabled:
            yield engine
            return
        from blockmon.tracing.instrument import statements_traced

        with statements_traced():
            yield engine


async def traced_client_resource(
    settings: RedisSettings, tracing: TracingSettings
) -> AsyncIterator[RedisClient]:
    """`client_resource`, with a span per Redis command (and per pipeline) of this client."""
    async with asynccontextmanager(client_resource)(settings) as client:
        if not tracing.enabled:
            yield client
            return
        from blockmon.tracing.instrument import commands_traced

        with commands_traced(client):
            yield client


def check_span(tracing: TracingSettings | None) -> CheckSpan | None:
    """What wraps each health check in a span; None when tracing is off, so the checker
    pays nothing per check."""
    if tracing is None or not tracing.enabled:
        return None
    from blockmon.tracing.instrument import check_spans

    return check_spans()
