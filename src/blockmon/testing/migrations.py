"""``round_trip``: the test every application's chain deserves, on the run's database:
each revision up, down and up again, the models matching the schema at head, and the
lint finding nothing that would block production (pytest-alembic's checks, plus the lint)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory

from blockmon.config.settings import MigrationSettings, PostgresSettings
from blockmon.errors import BlockmonError
from blockmon.migrations.api import check, downgrade, upgrade
from blockmon.migrations.lint import lint
from blockmon.postgres.engine import create_engine

Step = Callable[..., Awaitable[Any]]


async def round_trip(
    alembic_ini: str | Path,
    database: PostgresSettings,
    *,
    settings: MigrationSettings | None = None,
) -> None:
    """Raise AssertionError naming the step that failed. ``database`` should be empty
    (the ``blockmon_fresh_database`` fixture); it is left at head."""
    ms = settings or MigrationSettings()

    def config() -> Config:
        return Config(str(alembic_ini))

    script = ScriptDirectory.from_config(config())
    engine = create_engine(database)
    try:
        for found in reversed(list(script.walk_revisions())):
            revision, down = found.revision, found.down_revision
            steps: list[tuple[str, Step, str]] = [("up", upgrade, revision)]
            if not isinstance(down, tuple | list):  # a merge has no single step down
                steps += [("down", downgrade, down or "base"), ("up again", upgrade, revision)]
            for step, run, target in steps:
                try:
                    await run(engine, target, config=config(), settings=ms)
                except BlockmonError as error:
                    raise AssertionError(f"revision {revision} {step}: {error}") from None
        try:
            await check(engine, config=config(), settings=ms)
        except BlockmonError as error:
            raise AssertionError(f"models and schema at head differ: {error}") from None
    finally:
        await engine.dispose()
    report = lint(config(), None, ms)
    if report.open:
        listed = "; ".join(f"{f.revision} {f.rule}: {f.statement}" for f in report.open)
        raise AssertionError(f"db lint: {listed}")
