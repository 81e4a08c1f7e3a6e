"""Run migrations from Python, also inside a running event loop.

Every function takes an AsyncEngine or a container (an ``ApplicationContainer`` or a
``PostgresContainer``) and drives Alembic through that engine with
``connection.run_sync``: no second event loop, no ``asyncio.run``. Writers (upgrade,
downgrade, stamp) first take the migration lock (`blockmon.migrations.lock`).

``config`` names the chain; without it, the chain the migration settings name
(`default_config`): blockmon owns no table in the host's database unless
``migrations.alerting_tables`` asks for its alerting schema.

``await schema_status(container)`` gives ``(current, head, at_head)`` for health checks;
``await verify_checksums(container)`` the applied revisions whose file changed since
(`blockmon.migrations.checksums`).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import cache
from importlib.resources import files
from pathlib import Path
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
from blockmon.migrations import checksums
from blockmon.migrations.lock import advisory_lock
from blockmon.migrations.version_tables import BLOCKMON_VERSION_TABLE, version_table
from blockmon.postgres.engine import create_engine

SCRIPT_LOCATION = "blockmon:migrations"
SETTINGS_KEY = "blockmon.migrations"  # Config.attributes: the MigrationSettings to apply
METADATA_KEY = "blockmon.target_metadata"  # Config.attributes: models to compare (check)
CONNECTION_KEY = "connection"  # Config.attributes: the connection env.py runs on
COMMAND_KEY = "blockmon.command"  # Config.attributes: the command run (upgrade, check, ...)
MODELS_KEY = "blockmon.models"  # Config.attributes: env.py's target_metadata, set offline (lint)
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


def app_config(path: str) -> Config:
    """An application's Alembic config (its alembic.ini), checked before anything connects."""
    try:
        read_chain(path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return Config(path)


def configured_chains(settings: MigrationSettings) -> list[Config]:
    """The chains the settings name, in the order they are applied: blockmon's alerting
    tables (``alerting_tables``), then the application's (``heads_from``)."""
    chains = [alembic_config()] if settings.alerting_tables else []
    if settings.heads_from:
        chains.append(app_config(settings.heads_from))
    return chains


def default_config(settings: MigrationSettings) -> Config:
    """The chain a call without ``config`` runs: the first the settings name."""
    chains = configured_chains(settings)
    if not chains:
        raise UsageError(
            "no migration chain: blockmon keeps no tables of its own in your database; "
            "name your alembic.ini (migrations.heads_from, or --alembic-config), or set "
            "migrations.alerting_tables: true for blockmon's alerting schema"
        )
    return chains[0]


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
    (default: `blockmon.migrations.tables.metadata` for the alerting tables)."""
    cfg = config or default_config(_settings_of(target, settings))
    if metadata is not None:
        cfg.attributes[METADATA_KEY] = metadata
    cfg.attributes[COMMAND_KEY] = "check"
    async with _engine(target, settings, for_writing=False) as (engine, ms):
        cfg.attributes[SETTINGS_KEY] = ms
        await _on_connection(engine, cfg, command.check)


async def schema_status(target: Any, *, config: Config | None = None) -> SchemaStatus:
    """The revision the database is at, the head of the migrations (``config``'s, by
    default the configured chain's), and whether they agree. Read-only and lock-free."""
    config = config or default_config(_settings_of(target, None))
    script = _script(config)
    table = version_table(config)
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


async def verify_checksums(
    target: Any,
    *,
    config: Config | None = None,
    settings: MigrationSettings | None = None,
    record: bool = False,
    accept: Sequence[str] = (),
) -> checksums.ChecksumReport:
    """The applied revisions of the chain whose file changed since blockmon applied them,
    and those applied with no checksum recorded. ``record``: first record the checksums
    of the latter (the files as they are now); ``accept``: first record these revisions'
    files anew (a reviewed change). Recording takes the migration lock."""
    cfg = config or default_config(_settings_of(target, settings))
    script = _script(cfg)
    table = version_table(cfg)
    async with _engine(target, settings, for_writing=record or bool(accept)) as (engine, ms):
        if record or accept:
            async with advisory_lock(engine, ms.lock_wait), engine.begin() as conn:
                heads = await conn.run_sync(_current_heads, table)
                rows = await conn.run_sync(checksums.recorded_rows, table)
                applied = {r.revision: r for r in checksums.applied(script, heads)}
                unknown = [name for name in accept if name not in applied]
                if unknown:
                    raise UsageError(
                        f"--accept-change: {', '.join(unknown)} is not an applied revision "
                        f"of this chain (applied: {', '.join(applied) or 'none'})"
                    )
                chosen = [applied[name] for name in accept]
                if record:
                    chosen += [r for name, r in applied.items() if name not in rows]
                done = await conn.run_sync(checksums.record_applied, table, chosen)
        else:
            done = []
        async with engine.connect() as conn:
            heads = await conn.run_sync(_current_heads, table)
            rows = await conn.run_sync(checksums.recorded_rows, table)
    report = checksums.compare(script, heads, rows)
    report.recorded = done
    return report


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


def schema_probe_for(settings: MigrationSettings) -> SchemaProbe | None:
    """The ``postgres:schema`` probe over the chains the application uses: blockmon's
    alerting tables (``alerting_tables``), the application's (``heads_from``); None
    when there are none."""
    chains = []
    if settings.alerting_tables:
        changed = checksums.changed_probe(packaged_script, BLOCKMON_VERSION_TABLE)
        chains.append(Chain("blockmon", BLOCKMON_VERSION_TABLE, packaged_heads, changed))
    if settings.heads_from:
        path = str(Path(settings.heads_from).resolve())  # as read_chain read it
        app = read_chain(path)
        changed = checksums.changed_probe(
            cache(lambda: ScriptDirectory.from_config(app_config(path))), app.version_table
        )
        chains.append(Chain("app", app.version_table, lambda: app.heads, changed))
    return chains_probe(chains) if chains else None


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
    cfg = config or default_config(_settings_of(target, settings))
    check_revision_name(revision, cfg)
    cfg.attributes[COMMAND_KEY] = name
    async with _engine(target, settings, for_writing=True) as (engine, ms):
        cfg.attributes[SETTINGS_KEY] = ms
        async with advisory_lock(engine, ms.lock_wait):
            await _on_connection(engine, cfg, work)
    return await schema_status(target, config=cfg)


def _settings_of(target: Any, settings: MigrationSettings | None) -> MigrationSettings:
    """The migration settings that apply: given, else the container's, else defaults."""
    if settings is not None:
        return settings
    providers = getattr(target, "providers", {})
    if "postgres" in providers and "settings" in providers:
        full: Settings = target.settings()
        return full.migrations
    return MigrationSettings()


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
