"""Is the database schema at the migrations' heads, and are the applied revisions' files
still what was applied? blockmon's chain (its own version table) and, when
``migrations.heads_from`` names the application's alembic.ini, the application's chain
too. The result is a check of its own, ``postgres:schema``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from blockmon.health.checks.postgres import worded
from blockmon.health.model import Observation, Status

if (
    TYPE_CHECKING
):  # only the type: the metrics package imports redis-py (the migration env needs none)
    from blockmon.metrics.pool import PoolState

SchemaProbe = Callable[[AsyncConnection], Awaitable[Observation | None]]
Heads = Callable[[], Collection[str]]
# the applied revisions whose file changed since (given the applied heads), each described
ChangedProbe = Callable[[AsyncConnection, Sequence[str]], Awaitable[list[str]]]

_EXISTS = text("SELECT to_regclass(:table) IS NOT NULL")


@dataclass(frozen=True)
class Chain:
    """A migration chain to compare: ``name`` labels it in the output ("blockmon", "app");
    ``changed`` finds applied revisions whose file changed (`blockmon.migrations.checksums`)."""

    name: str
    version_table: str
    heads: Heads
    changed: ChangedProbe | None = None


async def _applied(conn: AsyncConnection, table: str) -> list[str] | None:
    """The revisions in ``table``; None when the table does not exist."""
    if not (await conn.execute(_EXISTS, {"table": table})).scalar():
        return None
    rows = await conn.execute(text(f'SELECT version_num FROM "{table}"'))
    return sorted(str(v) for v in rows.scalars())


def alembic_schema_probe(
    heads: Heads | None = None, *, version_table: str = "alembic_version"
) -> SchemaProbe:
    """Report the revision(s) applied in ``version_table``; with ``heads``, warn when
    they differ (also when nothing was migrated). Without ``heads``, a database without
    the table reports no observation."""

    async def probe(conn: AsyncConnection) -> Observation | None:
        applied = await _applied(conn, version_table)
        if applied is None and heads is None:
            return None
        value = ",".join(applied or []) or None
        if heads is None:
            return Observation("schema", value)
        problem = _behind(applied or [], heads())
        if problem is None:
            return Observation("schema", value)
        return Observation("schema", value, status=Status.WARN, output=f"schema {problem}")

    return probe


def chains_probe(chains: Sequence[Chain]) -> SchemaProbe:
    """One observation for several chains: ``{"blockmon": "0001", "app": "a002"}``,
    warning for each chain that is not at its heads."""

    async def probe(conn: AsyncConnection) -> Observation | None:
        value: dict[str, str | None] = {}
        problems: list[str] = []
        for chain in chains:
            applied = await _applied(conn, chain.version_table) or []
            value[chain.name] = ",".join(applied) or None
            problem = _behind(applied, chain.heads())
            if problem is not None:
                problems.append(f"{chain.name} schema {problem}")
            if chain.changed is not None:
                problems += [f"{chain.name} {text}" for text in await chain.changed(conn, applied)]
        if problems:
            return Observation("schema", value, status=Status.WARN, output="; ".join(problems))
        return Observation("schema", value)

    return probe


def _behind(applied: list[str], heads: Collection[str]) -> str | None:
    expected = sorted(heads)
    if applied == expected:
        return None
    return f"at {','.join(applied) or '(none)'}, head is {','.join(expected) or '(none)'}"


def schema_check(
    engine: AsyncEngine, probe: SchemaProbe, pool_state: Callable[[], PoolState]
) -> Callable[[], Awaitable[list[Observation]]]:
    """The ``postgres:schema`` check: the probe on a connection of the engine's pool.
    When every connection is in use it repeats its last answer instead of queueing
    behind the application (the postgres check reports the saturation)."""
    reader = engine.execution_options(
        isolation_level="AUTOCOMMIT", blockmon_operation="health_check"
    )
    last: list[Observation] = []

    async def check() -> list[Observation]:
        state = pool_state()
        if state.max and state.used >= state.max:
            return last
        try:
            async with reader.connect() as conn:
                observation = await probe(conn)
        except Exception as error:
            plain = worded(error, engine)
            if plain is not None:
                raise plain from None
            raise
        last[:] = [] if observation is None else [observation]
        return list(last)

    return check
