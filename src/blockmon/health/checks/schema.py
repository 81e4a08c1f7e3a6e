"""Is the database schema at the migrations' head? Kept to one probe function so the
application can replace it (``MonitoringContainer.schema_probe``), e.g. to compare
with its own migrations' heads instead of blockmon's packaged ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from blockmon.health.model import Observation, Status

SchemaProbe = Callable[[AsyncConnection], Awaitable[Observation | None]]
Heads = Callable[[], Collection[str]]

_EXISTS = text("SELECT to_regclass('alembic_version') IS NOT NULL")
_CURRENT = text("SELECT version_num FROM alembic_version")


def alembic_schema_probe(heads: Heads | None = None) -> SchemaProbe:
    """Report the applied Alembic revision(s); with ``heads``, warn when they differ
    (also when nothing was migrated). Without ``heads``, a database without an
    ``alembic_version`` table reports no observation."""

    async def probe(conn: AsyncConnection) -> Observation | None:
        current: list[str] = []
        if (await conn.execute(_EXISTS)).scalar():
            current = sorted(str(v) for v in (await conn.execute(_CURRENT)).scalars())
        elif heads is None:
            return None
        value = ",".join(current) or None
        if heads is None:
            return Observation("schema", value)
        expected = sorted(heads())
        if current == expected:
            return Observation("schema", value)
        want = ",".join(expected) or "(none)"
        return Observation(
            "schema",
            value,
            status=Status.WARN,
            output=f"schema at {value or '(none)'}, head is {want}",
        )

    return probe
