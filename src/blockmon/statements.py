"""The cheap path for single statements.

SQLAlchemy's default path wraps each statement in BEGIN ... ROLLBACK: three round
trips. A lone statement is atomic anyway, so this path runs it in AUTOCOMMIT mode
and pays one. Use `blockmon.transactions` when several statements must commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Executable, Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

Statement = str | Executable
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def _compile(statement: Statement) -> Executable:
    return text(statement) if isinstance(statement, str) else statement


class Statements:
    """``await db.fetch_all("SELECT ... WHERE id = :id", {"id": 1})``: one statement, one round trip."""

    def __init__(self, engine: AsyncEngine, *, autocommit: bool = True) -> None:
        # Behind PgBouncer in transaction mode a statement prepared outside a transaction
        # may be executed on another server connection: there, pass autocommit=False.
        self.engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
        )

    def __repr__(self) -> str:
        return f"Statements({self.engine.url.render_as_string(hide_password=True)})"

    async def execute(self, statement: Statement, params: Params = None) -> int:
        """Run a statement (or one per parameter set, pipelined); return the affected row
        count, or -1 for several parameter sets (asyncpg's executemany does not report it)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(_compile(statement), params)
            return int(result.rowcount)

    async def fetch_all(self, statement: Statement, params: Params = None) -> Sequence[Row[Any]]:
        async with self.engine.connect() as conn:
            return (await conn.execute(_compile(statement), params)).all()

    async def fetch_one(self, statement: Statement, params: Params = None) -> Row[Any] | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(_compile(statement), params)).first()

    async def scalar(self, statement: Statement, params: Params = None) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(_compile(statement), params)).scalar()
