"""Checked by ``mypy --strict`` (tests/test_typing.py), never run: each line marked
``# error:`` must be reported, so the check of statements_use.py can fail at all."""

from __future__ import annotations

from typing import assert_type

from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from blockmon import Record, Statements


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)


async def misuse(db: Statements) -> None:
    assert_type(await db.fetch_one("SELECT 1"), Record)  # error: Expression is of type
    assert_type(await db.scalar(select(Item.id)), str | None)  # error: Expression is of type
    row = await db.fetch_one("SELECT 1")
    print(row.name)  # error: Item "None" of "Record | None" has no attribute "name"
