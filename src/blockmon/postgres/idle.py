"""Keeps ``postgres.min_idle`` connections open (HikariCP's ``minimumIdle``): opened at
start-up, before the first requests would have to, and opened again after the pool lost
them (a ``dispose()`` after an outage), so neither a deploy nor a recovery turns the
first requests into a connect storm.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.log import get_logger
from blockmon.config.secrets import redact

INTERVAL = 1.0  # seconds between two looks at the pool
_log = get_logger("blockmon.postgres")


async def fill(engine: AsyncEngine, count: int) -> None:
    """Open connections until ``engine``'s pool holds ``count`` (idle or in use): hold
    ``count`` minus those in use at once (idle ones first, new ones for the rest), then
    give them all back. Raises the first connect error; nothing stays checked out."""
    pool = engine.sync_engine.pool  # read each time: dispose() replaces it
    in_use = pool.checkedout()  # type: ignore[attr-defined]
    if pool.checkedin() + in_use >= count:  # type: ignore[attr-defined]
        return
    barrier = asyncio.Barrier(count - in_use)

    async def hold() -> None:
        try:
            async with engine.connect():
                await barrier.wait()
        except asyncio.BrokenBarrierError:
            pass
        except Exception:
            await barrier.abort()
            raise

    outcomes = await asyncio.gather(
        *(hold() for _ in range(count - in_use)), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def keep(engine: AsyncEngine, count: int, interval: float = INTERVAL) -> None:
    """`fill` every ``interval`` seconds until cancelled; a failure is logged once per
    episode (the next look tries again)."""
    failing = False
    while True:
        try:
            await fill(engine, count)
        except Exception as error:
            if not failing:
                _log.warning(
                    "postgres: could not open postgres.min_idle connections",
                    min_idle=count,
                    error=redact(f"{type(error).__name__}: {error}"),
                )
            failing = True
        else:
            failing = False
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def kept(engine: AsyncEngine, count: int) -> AsyncIterator[None]:
    """``count`` connections open on entry (unless the server is not up yet: `keep`
    tries again) and kept open until exit; nothing for 0."""
    if count == 0:
        yield
        return
    with contextlib.suppress(Exception):
        await fill(engine, count)
    keeper = asyncio.create_task(keep(engine, count), name="postgres:min_idle")
    try:
        yield
    finally:
        keeper.cancel()
        await asyncio.wait({keeper})
