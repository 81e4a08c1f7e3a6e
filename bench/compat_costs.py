"""What each private access of `blockmon._compat.sqlalchemy` buys: the same container
built once on the internals and once per access with that access replaced by its
public fallback, measured in the same run (``python bench/run.py --only compat``).

Each variant forces one fallback only while its container starts (where the engine's
pool, dialect and ``dispose`` are instrumented); the wrappers installed then stay for
the run. The bare engine (blockmon's driver settings, nothing else) and the asyncpg
pool are the references docs/architecture.md quotes the ratios against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from harness import Case, Variant
from pg_cases import POOL, TX_NAMED, asyncpg_ops, container, sqlalchemy_ops, two_keys
from run_state import RunState
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from blockmon._compat import sqlalchemy as sa_compat
from blockmon.postgres import engine as engine_module
from blockmon.postgres import pool as pool_module
from blockmon.postgres.engine import connect_args, engine_url


@contextmanager
def _replaced(name: str, value: Any, module: Any = sa_compat) -> Iterator[None]:
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, before)


@contextmanager
def _layout_changed() -> Iterator[None]:
    """Every access on its fallback, as when the probe fails."""
    checked = sa_compat.LAYOUT.checked
    sa_compat.LAYOUT.checked = False
    try:
        yield
    finally:
        sa_compat.LAYOUT.checked = checked


def _public_pool(pool: Any, guard: Any, last_used: str, checked_out: str, *rest: Any) -> Any:
    """`instrument_pool` on its public fallback (no greenlet-free checkout either)."""
    idle = sa_compat.idle_connections(pool)
    max_overflow = rest[0] if rest else None
    undo = pool_module._instrument_public(pool, guard, last_used, checked_out, max_overflow, idle)
    return undo, None


# variant name -> what its container starts under
FALLBACKS: dict[str, Callable[[], Any]] = {
    "internals": lambda: _replaced("LAYOUT", sa_compat.LAYOUT),
    "public pool": lambda: _replaced("instrument_pool", _public_pool),
    "public execution": lambda: _replaced("wrap_execution", lambda *args: None),
    "public idle count": lambda: _replaced("idle_connections", sa_compat._CheckedIn),
    # SQLAlchemy applies pool_recycle itself (no spread; its checkout may reconnect, so
    # Statements check out in a greenlet)
    "public recycle": lambda: _replaced("pool_recycle", lambda pool: None),
    # SQLAlchemy's own pool class: dispose() followed through the engine_disposed event
    "dispose event": lambda: _replaced("FollowedPool", AsyncAdaptedQueuePool, engine_module),
    "all public": _layout_changed,
}

# The accesses `Statements` reads at run time, each with its public alternative set up
# once the container started (`AFTER`), beside the internals again: a group of its own
# (``compat.edges``), since twelve pools of 10 would pass PostgreSQL's 100 connections.
EDGES: dict[str, Callable[[], Any]] = {
    "internals": FALLBACKS["internals"],
    "public invalidation": FALLBACKS["internals"],
    "check-in in greenlet": FALLBACKS["internals"],
}


async def _lost_on_fallback(app: Any, statements: Any) -> None:
    """One connection lost as `Statements` reports it, on `invalidate_pool`'s public
    fallback: the pool keeps its ``connect`` and ``checkout`` listeners from then on (the
    steady state measured is the one after the first disconnect)."""
    pool = (await app.postgres.engine()).sync_engine.pool

    def lose() -> None:
        fairy = pool.connect()
        with _layout_changed():
            sa_compat.invalidate_pool(pool, fairy, ConnectionError("lost"))

    await sa_compat.in_greenlet(lose)


async def _check_in_in_greenlet(app: Any, statements: Any) -> None:
    """`closes_at_return`'s public alternative (no look at the pool's listeners): every
    `Statements` check-in runs in SQLAlchemy's greenlet."""

    async def check_in(pool: Any, fairy: Any) -> None:
        await sa_compat.in_greenlet(fairy.close)

    statements._check_in = check_in


# variant name -> what is done to its container once started
AFTER: dict[str, Callable[[Any, Any], Any]] = {
    "public invalidation": _lost_on_fallback,
    "check-in in greenlet": _check_in_in_greenlet,
}


def checkout_ops(statements: Any) -> dict[str, Any]:
    """A `Statements` checkout and check-in with no statement (client CPU only, no round
    trip): the greenlet-free way, and each half through SQLAlchemy's greenlet, as when
    the greenlet-free checkout is off (its queue read, recycle takeover) or the check-in
    does not look at the pool's listeners."""
    pool = statements.engine.sync_engine.pool

    async def internals() -> None:
        await statements._check_in(pool, await statements._connection())

    async def checkout_in_greenlet() -> None:
        await statements._check_in(pool, await statements.engine.raw_connection())

    async def check_in_in_greenlet() -> None:
        fairy = await statements._connection()
        await sa_compat.in_greenlet(fairy.close)

    return {
        "internals": internals,
        "checkout in greenlet": checkout_in_greenlet,
        "check-in in greenlet": check_in_in_greenlet,
    }


def statements_ops(statements: Any) -> dict[str, Any]:
    async def select_1() -> Any:
        return await statements.scalar("SELECT 1")

    async def unit() -> Any:
        a, b = two_keys()
        async with statements.transaction() as work:
            for stmt, k in zip(TX_NAMED, (a, a, a, b, b), strict=True):
                await work.execute(stmt, {"id": k})

    return {"select_1": select_1, "unit": unit}


@asynccontextmanager
async def costs(
    state: RunState, variants: dict[str, Callable[[], Any]] = FALLBACKS, key: str = "compat"
) -> AsyncIterator[list[Case]]:
    """SELECT 1 through the engine and through Statements, and the unit of work, per
    fallback, beside a bare engine and an asyncpg pool."""
    async with AsyncExitStack() as stack:
        url = engine_url(state.settings.postgres)
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        driver = connect_args(state.settings.postgres, url)
        pool = await asyncpg.create_pool(dsn, min_size=POOL, max_size=POOL, **driver)
        stack.push_async_callback(pool.close)
        bare = create_async_engine(url, pool_size=POOL, max_overflow=0, connect_args=driver)
        stack.push_async_callback(bare.dispose)
        engines: dict[str, Any] = {}
        fast: dict[str, Any] = {}
        bare_checkout: dict[str, Any] = {}
        for name, fallback in variants.items():
            with fallback():
                app = await container(state, stack)
                statements = await app.postgres.statements()
            if name == "internals":
                bare_checkout = checkout_ops(statements)
            if name in AFTER:
                await AFTER[name](app, statements)
            engines[name] = sqlalchemy_ops(await app.postgres.engine())
            fast[name] = statements_ops(statements)
        raw, plain = asyncpg_ops(pool), sqlalchemy_ops(bare)
        cases = []
        label = "private access" if key == "compat" else "private access (Statements' reads)"
        for tasks in (1, 32):
            cases.append(
                Case(
                    f"{key}.engine.{tasks}",
                    f"{label}: SELECT 1 via the engine, {tasks} task(s)",
                    tasks,
                    [Variant("SQLAlchemy", plain["select_1"])]
                    + [Variant(n, ops["select_1"]) for n, ops in engines.items()],
                )
            )
            cases.append(
                Case(
                    f"{key}.statements.{tasks}",
                    f"{label}: SELECT 1 via Statements, {tasks} task(s)",
                    tasks,
                    [Variant("asyncpg pool", raw["select_1"])]
                    + [Variant(n, ops["select_1"]) for n, ops in fast.items()],
                )
            )
            cases.append(
                Case(
                    f"{key}.unit.{tasks}",
                    f"{label}: 5-statement unit of work, {tasks} task(s)",
                    tasks,
                    [Variant("asyncpg pool", raw["tx"])]
                    + [Variant(n, ops["unit"]) for n, ops in fast.items()],
                )
            )
        if variants is EDGES:
            cases.append(
                Case(
                    f"{key}.checkout.1",
                    f"{label}: Statements checkout and check-in, no statement, 1 task",
                    1,
                    [Variant(n, op) for n, op in bare_checkout.items()],
                )
            )
        yield cases
