"""``blockmon db``: the schema migrations (upgrade, downgrade, current, history, check,
stamp), run through the same code as `blockmon.migrations.api`, from a checkout or a wheel."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blockmon.config.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", help="migrate the database schema", parents=[common])
    actions = db.add_subparsers(title="actions", metavar="ACTION", parser_class=type(db))

    from blockmon.cli.parser import revision_name

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
    action("check", "fail unless the database is at head and matches the models", None, False)
    action("stamp", "record REV as current without running anything", "required", True)


def run_db(args: argparse.Namespace) -> int:
    import asyncio

    from blockmon.cli.settings import command_settings
    from blockmon.config.log import configure_logging
    from blockmon.errors import UsageError
    from blockmon.migrations.api import alembic_config, check_revision_name

    settings = command_settings(args)
    configure_logging(settings.log)
    revision: str | None = getattr(args, "revision", None)
    if revision is not None:
        try:
            check_revision_name(revision)
        except UsageError as error:
            raise UsageError(f"db {args.action}: {error}") from None
    if args.action == "history":
        from alembic import command

        command.history(alembic_config())
        return 0
    if getattr(args, "sql", False):
        return _offline(args.action, revision or "head", settings)
    try:
        return asyncio.run(_online(args.action, revision, settings))
    except UsageError as error:
        raise UsageError(f"db {args.action}: {error}") from None


def say(message: str) -> None:
    print(f"blockmon: {message}", flush=True)


def _offline(action: str, revision: str, settings: Settings) -> int:
    """Print the SQL; Alembic decides which actions and ranges it can write offline."""
    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    from blockmon.errors import UsageError
    from blockmon.migrations.api import SETTINGS_KEY, alembic_config

    cfg = alembic_config()
    cfg.attributes[SETTINGS_KEY] = settings.migrations
    run = {"upgrade": command.upgrade, "downgrade": command.downgrade, "stamp": command.stamp}
    try:
        run[action](cfg, revision, sql=True)
    except (CommandError, RevisionError) as error:
        raise UsageError(f"db {action} --sql: {' '.join(str(error).split())}") from None
    return 0


async def _online(action: str, revision: str | None, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from blockmon.config.secrets import redact
    from blockmon.containers import ApplicationContainer
    from blockmon.errors import BlockmonError
    from blockmon.migrations import api as migrate

    container = ApplicationContainer()
    container.config.from_dict(migrate.migration_mapping(settings))
    try:
        async with migrate.database_only(container):
            if action == "check":
                await migrate.check(container)
                say("schema matches the models and is at head")
                return 0
            if action == "current":
                status = await migrate.schema_status(container)
            else:
                run = {
                    "upgrade": migrate.upgrade,
                    "downgrade": migrate.downgrade,
                    "stamp": migrate.stamp,
                }[action]
                status = await run(container, revision or "head")
    except (OSError, TimeoutError, SQLAlchemyError) as error:
        raise BlockmonError(
            redact(f"database: {type(error).__name__}: {' '.join(str(error).split())}")
        ) from None
    where = "at head" if status.at_head else f"not at head ({status.head})"
    say(f"schema at {status.current or 'base (empty)'}, {where}")
    return 0
