"""Run blockmon's migrations from Python, also inside a running event loop.

Every function takes an AsyncEngine or a container (an ``ApplicationContainer`` or a
``PostgresContainer``) and drives Alembic through that engine with
``connection.run_sync``: no second event loop, no ``asyncio.run``. Writers (upgrade,
downgrade, stamp) first take the migration lock (`blockmon.migrations.lock`).

``await schema_status(container)`` gives ``(current, head, at_head)`` for health checks.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import cache
from importlib.resources import files
from typing import Any, NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from blockmon.config.alembic_ini import read_chain
from blockmon.config.secrets import redact
from blockmon.config.settings import MigrationSettings, Settings
from blockmon.errors import ConfigError, MigrationError, UsageError
from blockmon.health.checks.schema import Chain, SchemaProbe, chains_probe
from blockmon.migrations.lock import advisory_lock
from blockmon.migrations.version_tables import (
    BLOCKMON_VERSION_TABLE,
    adopt_first_release,
    version_table,
)
from blockmon.postgres.engine import create_engine

SCRIPT_LOCATION = "blockmon:migrations"
SETTINGS_KEY = "blockmon.migrations"  # Config.attributes: the MigrationSettings to apply
METADATA_KEY = "blockmon.target_metadata"  # Config.attributes: models to compare (check)
CONNECTION_KEY = "connection"  # Config.attributes: the connection env.py runs on
COMMAND_KEY = "blockmon.command"  # Config.attributes: the command run (upgrade, check, ...)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")


class SchemaStatus(NamedTuple):
    """``current`` is None on an empty database; several heads are joined with commas."""

    current: str | None
    head: str
    at_head: bool


def versions_dir() -> str:
    """Where the packaged revisions live (a real directory in a wheel or a checkout)."""
    return str(files("blockmon") / "migrations" / "versions")


def alembic_config(*, extra_version_locations: Sequence[str] = ()) -> Config:
    """An Alembic Config for the packaged migrations (plus extra revision directories)."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_table", BLOCKMON_VERSION_TABLE)
    if extra_version_locations:
        cfg.set_main_option(
            "version_locations", os.pathsep.join([versions_dir(), *extra_version_locations])
        )
    return cfg


def migration_mapping(settings: Settings) -> dict[str, Any]:
    """The container configuration for a migration process: the migration DSN, if any,
    becomes the engine's URL (and is then no longer "separate")."""
    data = settings.model_dump()
    if settings.migrations.url is not None:
        data["postgres"]["url"] = settings.migrations.url
        data["migrations"]["url"] = None
    return data


async def upgrade(
    target: Any,
    revision: str = "head",
    *,
    config: Config | None = None,
    settings: MigrationSettings | None = None,
) -> SchemaStatus:
    """Bring the schema up to ``revision``; a no-op when it is already there."""
    return await _run(
        target, lambda cfg: command.upgrade(cfg, revision), revision, config, settings, "upgrade"
    )


async def downgrade(
    target: Any,
    revision: str,
    *,
    config: Config | None = None,
    settings: MigrationSettings | None = None,
) -> SchemaStatus:
    """Take the schema down to ``revision`` (``base`` removes everything)."""
    return await _run(
        target,
        lambda cfg: command.downgrade(cfg, revision),
        revision,
        config,
        settings,
        "downgrade",
    )


async def stamp(
    target: Any,
    revision: str,
    *,
    config: Config | None = None,
    settings: MigrationSettings | None = None,
) -> SchemaStatus:
    """Record ``revision`` as current without running anything (adopting a database)."""
    return await _run(
        target, lambda cfg: command.stamp(cfg, revision), revision, config, settings, "stamp"
    )


async def check(
    target: Any,
    *,
    metadata: MetaData | None = None,
    config: Config | None = None,
    settings: MigrationSettings | None = None,
) -> None:
    """Raise `MigrationError` unless the database is at head and matches ``metadata``
    (default: `blockmon.migrations.tables.metadata`)."""
    cfg = config or alembic_config()
    if metadata is not None:
        cfg.attributes[METADATA_KEY] = metadata
    cfg.attributes[COMMAND_KEY] = "check"
    async with _engine(target, settings, for_writing=False) as (engine, ms):
        cfg.attributes[SETTINGS_KEY] = ms
        await _on_connection(engine, cfg, command.check)


async def schema_status(target: Any, *, config: Config | None = None) -> SchemaStatus:
    """The revision the database is at, the head of the migrations (``config``'s, by
    default blockmon's), and whether they agree. Read-only and lock-free."""
    script = _script(config)
    table = version_table(config or alembic_config())
    async with (
        _engine(target, None, for_writing=False) as (engine, _),
        engine.connect() as conn,
    ):
        current = await conn.run_sync(_current_heads, table)
    heads = script.get_heads()
    return SchemaStatus(
        current=",".join(sorted(current)) or None,
        head=",".join(sorted(heads)),
        at_head=set(current) == set(heads),
    )


def check_revision_name(revision: str, config: Config | None = None) -> None:
    """Reject an unknown revision name before connecting (relative forms and ranges
    are left to Alembic, which needs the database to resolve them)."""
    if not _PLAIN_NAME.fullmatch(revision):
        return
    try:
        _script(config).get_revisions(revision)
    except (CommandError, RevisionError) as error:
        raise UsageError(f"revision: {error}") from None


def _script(config: Config | None) -> ScriptDirectory:
    return ScriptDirectory.from_config(config) if config is not None else packaged_script()


@cache
def packaged_script() -> ScriptDirectory:
    """blockmon's packaged revisions (read from disk once)."""
    return ScriptDirectory.from_config(alembic_config())


def packaged_heads() -> tuple[str, ...]:
    """The heads of blockmon's packaged migrations."""
    return tuple(packaged_script().get_heads())


def schema_probe_for(settings: MigrationSettings) -> SchemaProbe:
    """The ``postgres:schema`` probe: blockmon's chain, and the application's when
    ``migrations.heads_from`` names its alembic.ini."""
    chains = [Chain("blockmon", BLOCKMON_VERSION_TABLE, packaged_heads)]
    if settings.heads_from:
        app = read_chain(settings.heads_from)
        chains.append(Chain("app", app.version_table, lambda: app.heads))
    return chains_probe(chains)


def _current_heads(conn: Connection, table: str) -> tuple[str, ...]:
    return MigrationContext.configure(conn, opts={"version_table": table}).get_current_heads()


async def _run(
    target: Any,
    work: Callable[[Config], None],
    revision: str,
    config: Config | None,
    settings: MigrationSettings | None,
    name: str,
) -> SchemaStatus:
    cfg = config or alembic_config()
    check_revision_name(revision, cfg)
    cfg.attributes[COMMAND_KEY] = name
    async with _engine(target, settings, for_writing=True) as (engine, ms):
        cfg.attributes[SETTINGS_KEY] = ms
        async with advisory_lock(engine, ms.lock_wait):
            if version_table(cfg) == BLOCKMON_VERSION_TABLE:
                async with engine.connect() as conn:
                    await conn.run_sync(adopt_first_release, _script(config))
            await _on_connection(engine, cfg, work)
    return await schema_status(target, config=config)


async def _on_connection(engine: AsyncEngine, cfg: Config, work: Callable[[Config], None]) -> None:
    async with engine.connect() as conn:
        try:
            await conn.run_sync(_invoke, cfg, work)
        except CommandError as error:
            message = " ".join(str(error).split())
            if isinstance(error.__cause__, RevisionError):
                raise UsageError(f"revision: {message}") from None
            raise MigrationError(redact(message)) from None
        except RevisionError as error:
            raise UsageError(f"revision: {error}") from None


def _invoke(connection: Connection, cfg: Config, work: Callable[[Config], None]) -> None:
    cfg.attributes[CONNECTION_KEY] = connection
    try:
        work(cfg)
    finally:
        del cfg.attributes[CONNECTION_KEY]


@asynccontextmanager
async def _engine(
    target: Any, settings: MigrationSettings | None, *, for_writing: bool
) -> AsyncIterator[tuple[AsyncEngine, MigrationSettings]]:
    """The engine to use: the target's, or a temporary one on the migration DSN."""
    if isinstance(target, AsyncEngine):
        yield target, settings or MigrationSettings()
        return
    providers = getattr(target, "providers", {})
    if "postgres" in providers and "settings" in providers:
        full: Settings = target.settings()
        ms = settings or full.migrations
        if for_writing and ms.url is not None:
            async with _temporary_engine(full, ms) as engine:
                yield engine, ms
            return
        yield await target.postgres.engine(), ms
    elif "engine" in providers:
        yield await target.engine(), settings or MigrationSettings()
    else:
        raise TypeError(f"expected an AsyncEngine or a blockmon container, got {target!r}")


@asynccontextmanager
async def _temporary_engine(full: Settings, ms: MigrationSettings) -> AsyncIterator[AsyncEngine]:
    assert ms.url is not None
    try:
        engine = create_engine(full.postgres, url=ms.url.get_secret_value())
    except ConfigError as error:
        raise ConfigError(str(error).replace("postgres.url", "migrations.url", 1)) from None
    try:
        yield engine
    finally:
        await engine.dispose()
