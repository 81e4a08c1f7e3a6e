"""Users, stored in the service's ``accounts`` table through blockmon's engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fastapi_service.models import accounts


@dataclass(frozen=True)
class User:
    id: int
    email: str
    is_active: bool


class NotFoundError(Exception):
    """No user with that id."""


class UserRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get_all(self) -> list[User]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(accounts).order_by(accounts.c.id))
            return [User(**row._mapping) for row in rows]

    async def get_by_id(self, user_id: int) -> User:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.id == user_id))).first()
        if row is None:
            raise NotFoundError(user_id)
        return User(**row._mapping)

    async def add(self, email: str) -> User:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(insert(accounts).values(email=email).returning(accounts))
            ).one()
        return User(**row._mapping)

    async def delete_by_id(self, user_id: int) -> None:
        async with self.engine.begin() as conn:
            deleted = await conn.execute(delete(accounts).where(accounts.c.id == user_id))
        if deleted.rowcount == 0:
            raise NotFoundError(user_id)
