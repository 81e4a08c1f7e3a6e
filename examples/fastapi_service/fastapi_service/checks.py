"""The service's own health check, registered on blockmon's checker while the app runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from blockmon import HealthChecker, Observation
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_service.models import accounts


async def register_accounts_check(
    checker: HealthChecker, engine: AsyncEngine
) -> AsyncIterator[None]:
    """A Resource: the app's Lifespan starts it after blockmon's checker (its argument),
    so the check is registered while the app runs and removed at shutdown."""

    async def accounts_readable() -> list[Observation]:
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(accounts))).scalar_one()
        return [Observation("rows", count, "rows")]

    checker.register("accounts", accounts_readable, timeout=2.0)  # critical=True by default
    yield
    checker.unregister("accounts")
