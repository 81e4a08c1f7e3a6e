"""docs/core.md's code for transactions, statements, units of work and the cache, run as
written (in the order the page gives it) on a container over a database of its own, as a
user pasting it into an ``async`` function would."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from sqlalchemy import text

from blockmon import ApplicationContainer, Lifespan, PostgresSettings

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("## Transactions", "## Statements: one round trip", "## Cache")


def _blocks() -> list[str]:
    page = (ROOT / "docs" / "core.md").read_text()
    found = []
    for heading in SECTIONS:
        section = page.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
        found += re.findall(r"```python\n(.*?)```", section, re.S)
    return found


async def test_the_documented_calls_run_as_written(
    blockmon_config: dict[str, Any], blockmon_fresh_database: PostgresSettings
) -> None:
    blocks = _blocks()
    assert len(blocks) == 4  # transactions, statements, units of work, cache
    container = ApplicationContainer()
    container.config.from_dict(
        {**blockmon_config, "postgres": blockmon_fresh_database.model_dump()}
    )
    loads = 0

    async def load_rules() -> list[dict[str, int]]:
        nonlocal loads
        loads += 1
        return [{"id": 1}]

    async with Lifespan(container):
        db = await container.postgres.statements()
        await db.execute("CREATE TABLE t (x int)")
        names: dict[str, Any] = {"container": container, "text": text, "load_rules": load_rules}
        for block in blocks:
            code = compile(block, "docs/core.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            done = eval(code, names)
            if done is not None:
                await done
        # what the page's statements left: 1 (transactions), 1 2 3 (statements), and the
        # unit's sum + 1 = 8
        assert [r.x for r in await db.fetch_all("SELECT x FROM t ORDER BY x")] == [1, 1, 2, 3, 8]
        assert names["n"] == 4 and names["row"] is not None and names["row"].x == 1
        assert names["rules"] == [{"id": 1}] and loads == 1
        cache = await container.redis.cache()
        assert await cache.get_json("rules") == [{"id": 1}]  # stored as JSON
        await cache.delete("rules", "a", "b", "rule:1")
