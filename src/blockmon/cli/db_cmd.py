"""``blockmon db``: the schema migrations (upgrade, downgrade, current, history, check,
stamp, lint), run through the same code as `blockmon.migrations.api`, from a checkout or a wheel.
Without ``--alembic-config PATH`` (an application's alembic.ini) the chain the settings name:
blockmon's alerting tables when ``migrations.alerting_tables`` is on, else the application's
(``migrations.heads_from``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.config import Config

    from blockmon.config.settings import MigrationSettings, Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    chain = argparse.ArgumentParser(add_help=False)
    chain.add_argument(
        "--alembic-config",
        metavar="PATH",
        default=argparse.SUPPRESS,  # shared action: given before or after ACTION
        help="the application's alembic.ini: run its migrations (default: the chain the settings name)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[common, chain])
    db = sub.add_parser("db", help="migrate the database schema", parents=[common])
    actions = db.add_subparsers(title="actions", metavar="ACTION", parser_class=type(db))

    from blockmon.cli.arguments import revision_name

    def action(name: str, help: str, rev: str | None, sql: bool) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help, parents=[common])
        if rev == "optional":
            parser.add_argument(
                "revision", nargs="?", default="head", metavar="REV", type=revision_name
            )
        elif rev == "required":
            parser.add_argument("revision", metavar="REV", type=revision_name)
        if sql:
            parser.add_argument(
                "--sql", action="store_true", help="print the SQL instead of running it"
            )
        parser.set_defaults(handler=run_db, action=name)
        return parser

    action("upgrade", "bring the schema up to REV (default: head)", "optional", True)
    action("downgrade", "take the schema down to REV (base removes everything)", "required", True)
    action(
        "current", "show the revision the database is at and whether it is the head", None, False
    )
    action("history", "list the revisions", None, False)
    check = action(
        "check",
        "fail unless the database is at head, matches the models, and no applied revision's "
        "file changed since",
        None,
        False,
    )
    check.add_argument(
        "--record",
        action="store_true",
        help="first record the checksums of applied revisions that have none",
    )
    check.add_argument(
        "--accept-change",
        metavar="REV",
        action="append",
        default=[],
        type=revision_name,
        help="first record REV's file anew (a reviewed change to an applied revision); repeatable",
    )
    action("stamp", "record REV as current without running anything", "required", True)
    lint = actions.add_parser(
        "lint", help="find revisions that block or rewrite tables", parents=[common]
    )
    lint.add_argument(
        "range",
        nargs="?",
        default=None,
        metavar="REV_RANGE",
        type=revision_name,
        help="FROM:TO (the revisions after FROM up to TO) or one REV (default: all)",
    )
    lint.add_argument("--json", action="store_true", help="print the report as JSON")
    lint.add_argument(
        "--measure",
        action="store_true",
        help="also apply the chain to a scratch database and report the locks taken",
    )
    lint.set_defaults(handler=run_lint, action="lint")


def run_db(args: argparse.Namespace) -> int:
    import asyncio

    from blockmon.cli.settings import command_settings
    from blockmon.config.log import configure_logging
    from blockmon.config.secrets import shown
    from blockmon.errors import UsageError
    from blockmon.migrations.api import check_revision_name

    settings = command_settings(args)
    configure_logging(settings.log)
    cfg = _chain(args, settings)
    revision: str | None = getattr(args, "revision", None)
    if revision is not None:
        if ":" in revision and not getattr(args, "sql", False):
            raise UsageError(
                f"db {args.action}: a range FROM:TO needs --sql, got {shown(revision)}"
            )
        try:
            check_revision_name(revision, cfg)
        except UsageError as error:
            raise UsageError(f"db {args.action}: {error}") from None
    if args.action == "history":
        from alembic import command

        command.history(cfg)
        return 0
    sql = " --sql" if getattr(args, "sql", False) else ""
    try:
        if sql:
            return _offline(args.action, revision or "head", settings, cfg)
        try:
            if args.action == "check":
                return asyncio.run(_check(args, settings, cfg))
            return asyncio.run(_online(args.action, revision, settings, cfg))
        except UsageError as error:
            raise UsageError(f"db {args.action}: {error}") from None
    except AssertionError:
        # Alembic asserts (rather than raising its RevisionError) on some relative forms
        # that lead nowhere, such as head-1 or 0001+1: still the user's input.
        raise UsageError(
            f"db {args.action}{sql}: revision {shown(revision)} does not resolve to a revision "
            "of the history (see blockmon db history)"
        ) from None


def _chain(args: argparse.Namespace, settings: Settings) -> Config:
    """``--alembic-config``'s chain, else the one the settings name; checked before
    anything connects."""
    from blockmon.errors import UsageError
    from blockmon.migrations.api import app_config, default_config

    path = getattr(args, "alembic_config", None)
    try:
        return default_config(settings.migrations) if path is None else app_config(path)
    except UsageError as error:
        where = "" if path is None else "argument --alembic-config: "
        raise UsageError(f"db {args.action}: {where}{error}") from None


def run_lint(args: argparse.Namespace) -> int:
    """Exit 0 when every finding is accepted in its revision file, 1 otherwise."""
    from blockmon.cli.settings import command_settings
    from blockmon.config.log import configure_logging
    from blockmon.migrations.lint import lint
    from blockmon.migrations.lint.render import as_json, as_text

    settings = command_settings(args)
    configure_logging(settings.log)
    cfg = _chain(args, settings)
    report = lint(cfg, args.range, settings.migrations)
    measured = None
    if args.measure:
        import asyncio

        from blockmon.migrations.lint.measure import measure

        measured = asyncio.run(measure(report, settings))
    if args.json:
        print(as_json(report, measured), flush=True)
    else:
        print(as_text(report, measured), flush=True)
    return 1 if report.open else 0


def say(message: str) -> None:
    print(f"blockmon: {message}", flush=True)


def _offline(action: str, revision: str, settings: Settings, cfg: Config) -> int:
    """Print the SQL; Alembic decides which actions and ranges it can write offline."""
    import contextlib
    import io
    import sys

    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    from blockmon.errors import UsageError
    from blockmon.migrations.api import SETTINGS_KEY

    cfg.attributes[SETTINGS_KEY] = settings.migrations
    run = {"upgrade": command.upgrade, "downgrade": command.downgrade, "stamp": command.stamp}
    sql = io.StringIO()  # printed whole or not at all: no half script before an error
    try:
        with contextlib.redirect_stdout(sql):
            run[action](cfg, revision, sql=True)
    except (CommandError, RevisionError) as error:
        raise UsageError(f"db {action} --sql: {' '.join(str(error).split())}") from None
    sys.stdout.write(sql.getvalue())
    return 0


def _complain(message: str) -> None:
    print(f"blockmon: error: {message}", file=sys.stderr, flush=True)


async def _check(args: argparse.Namespace, settings: Settings, cfg: Config) -> int:
    """``db check``: the applied revisions' files against their checksums (one line per
    changed revision on stderr, one per unrecorded one on stdout), then Alembic's check
    (at head, models match). Exit 1 when either finds something."""
    from blockmon.errors import MigrationError
    from blockmon.migrations import api as migrate
    from blockmon.migrations.checksums import shown

    async with _migration_engine(settings) as (engine, migrations):
        report = await migrate.verify_checksums(
            engine,
            config=cfg,
            settings=migrations,
            record=args.record,
            accept=args.accept_change,
        )
        for name in report.recorded:
            say(f"revision {name}: checksum recorded")
        for script in report.unrecorded:
            say(
                f"revision {script.revision} ({shown(script.path)}): checksum not recorded "
                "(applied before blockmon kept checksums, or by hand); "
                "blockmon db check --record records the file as it is now"
            )
        for changed in report.changed:
            _complain(changed.line())
        try:
            await migrate.check(engine, config=cfg, settings=migrations)
        except MigrationError as error:
            if not report.changed:
                raise
            _complain(str(error))
            return 1
    if report.changed:
        return 1
    say("schema matches the models and is at head; applied revisions match their files")
    return 0


@asynccontextmanager
async def _migration_engine(settings: Settings) -> AsyncIterator[tuple[Any, MigrationSettings]]:
    """The engine of the migration settings alone (no container: the process imports no
    metrics, health checker, monitoring app or dependency-injector, about 0.2 of its 0.9
    CPU-seconds); a server that does not answer is one line naming address and timeout."""
    from sqlalchemy import event
    from sqlalchemy.exc import SQLAlchemyError

    from blockmon.config.settings import PostgresSettings, validate
    from blockmon.errors import BlockmonError
    from blockmon.migrations import api as migrate
    from blockmon.tracing.resources import traced_engine_resource

    mapping = migrate.migration_mapping(settings)  # the migration DSN, if any, is the URL
    postgres = validate(PostgresSettings, mapping["postgres"], "postgres")
    migrations = settings.migrations.model_copy(update={"url": None})
    connected: list[bool] = []
    try:
        async with asynccontextmanager(traced_engine_resource)(
            postgres, settings.tracing
        ) as engine:
            event.listen(engine.sync_engine, "connect", lambda *_: connected.append(True))
            yield engine, migrations
    except (OSError, TimeoutError, SQLAlchemyError) as error:
        raise BlockmonError(f"database: {_failure(error, settings, bool(connected))}") from None


async def _tables(engine: Any, cfg: Config) -> list[str]:
    """The tables but the chain's bookkeeping (its version and checksum tables)."""
    from sqlalchemy import inspect

    from blockmon.migrations.checksums import checksum_table
    from blockmon.migrations.version_tables import version_table

    own = version_table(cfg)
    bookkeeping = {"alembic_version", own, checksum_table(own)}
    async with engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return sorted(n for n in names if n not in bookkeeping)


async def _online(action: str, revision: str | None, settings: Settings, cfg: Config) -> int:
    """current, upgrade, downgrade and stamp, on the migration settings' engine."""
    from blockmon.migrations import api as migrate

    tables: list[str] = []
    async with _migration_engine(settings) as (engine, migrations):
        if action == "current":
            status = await migrate.schema_status(engine, config=cfg)
            if status.current is None:
                tables = await _tables(engine, cfg)
        else:
            run = {
                "upgrade": migrate.upgrade,
                "downgrade": migrate.downgrade,
                "stamp": migrate.stamp,
            }[action]
            status = await run(engine, revision or "head", config=cfg, settings=migrations)
    where = "at head" if status.at_head else f"not at head ({status.head})"
    say(f"schema at {status.current or _base(tables)}, {where}")
    return 0


def _failure(error: BaseException, settings: Settings, connected: bool) -> str:
    """What failed, where, and which timeout ran out (a blackholed server times out)."""
    from blockmon.config.failures import connection_failure
    from blockmon.migrations.api import migration_mapping
    from blockmon.provisioning.servers import postgres_address

    pg = settings.postgres.model_validate(migration_mapping(settings)["postgres"])
    address = postgres_address(pg)
    if connected:
        timeout = ("postgres.command_timeout", pg.command_timeout)
        return connection_failure(error, address=address, timeout=timeout, doing="a statement on")
    timeout = ("postgres.connect_timeout", pg.connect_timeout)
    return connection_failure(error, address=address, timeout=timeout)


def _base(tables: list[str]) -> str:
    """An empty database, or one with tables but no recorded revision (a failed first
    upgrade over tables that were already there, or another application's schema)."""
    if not tables:
        return "base (empty)"
    names = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    return f"base (no revision recorded, but {len(tables)} tables exist: {names})"
