"""Checked by ``mypy --strict`` (tests/test_typing.py), never run: the types an
application gets back from blockmon's calls, as its own type checker sees them."""

from __future__ import annotations

from typing import Any, assert_type

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from blockmon import Cache, Record, Statements, StatementTransaction, Transactions


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


async def statements(db: Statements) -> None:
    assert_type(await db.fetch_one("SELECT 1"), Record | None)
    assert_type(await db.fetch_all("SELECT 1"), list[Record])
    assert_type(await db.scalar("SELECT 1"), Any)
    assert_type(await db.execute("DELETE FROM items"), int)
    assert_type(await db.scalar(select(Item.id)), int | None)
    assert_type(await db.scalar(select(Item.name)), str | None)
    assert_type(await db.fetch_one(select(Item.id, Item.name)), Row[int, str] | None)
    rows = await db.fetch_all(select(Item.id, Item.name))
    assert_type(rows[0], Row[int, str])
    assert_type(await db.fetch_one(text("SELECT 1")), Row[Any] | None)


async def units(db: Statements, tx: Transactions) -> None:
    async with db.transaction(isolation="serializable", read_only=True) as unit:
        assert_type(unit, StatementTransaction)
        assert_type(await unit.fetch_one("SELECT 1"), Record | None)

    async def count(unit: StatementTransaction) -> int:
        return int(await unit.scalar("SELECT count(*) FROM items"))

    assert_type(await db.run_transaction(count, attempts=3), int)
    async with tx.transaction(isolation="serializable") as session:
        assert_type(session, AsyncSession)

    async def names(session: AsyncSession) -> list[str]:
        return list((await session.execute(select(Item.name))).scalars())

    assert_type(await tx.run_transaction(names, read_only=True), list[str])


async def cache(c: Cache) -> None:
    async def load() -> dict[str, int]:
        return {"n": 1}

    assert_type(await c.get("k"), bytes | None)
    assert_type(await c.get_or_compute_json("k", load), dict[str, int])
