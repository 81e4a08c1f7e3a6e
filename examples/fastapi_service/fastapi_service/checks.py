"""The service's own health check, registered on blockmon's checker while the app runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from blockmon import HealthChecker, Observation, Statements
from sqlalchemy import func, select

from fastapi_service.models import accounts


async def register_accounts_check(
    checker: HealthChecker, statements: Statements
) -> AsyncIterator[None]:
    """A Resource: the app's Lifespan starts it after blockmon's checker (its argument),
    so the check is registered while the app runs and removed at shutdown."""

    async def accounts_readable() -> list[Observation]:
        count_users = select(func.count()).select_from(accounts)
        # operation: the check's queries are counted apart from the service's own
        count = await statements.scalar(count_users, operation="accounts_check")
        return [Observation("rows", count, "rows")]

    checker.register("accounts", accounts_readable, timeout=2.0)  # critical=True by default
    yield
    checker.unregister("accounts")
