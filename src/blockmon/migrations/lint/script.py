"""The SQL of each revision, as Alembic's offline mode writes it, parsed with PostgreSQL's
own grammar (pglast): what the lint reads and what ``--measure`` replays."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from pglast import ast, parse_sql
from pglast.parser import ParseError

from blockmon.config.secrets import redact
from blockmon.config.settings import MigrationSettings
from blockmon.errors import MigrationError, UsageError
from blockmon.migrations.lint.models import Models

# Alembic's own framing in offline output: one such comment line opens each step.
_STEP = "-- Running upgrade "


@dataclass(frozen=True)
class Statement:
    """One statement: its parse tree and its text as written (whitespace folded)."""

    node: ast.Node
    sql: str


@dataclass
class Revision:
    """A revision's statements, in the order an upgrade runs them."""

    revision: str
    path: str
    doc: str
    statements: list[Statement] = field(default_factory=list)


@dataclass
class ChainSql:
    """What an upgrade from base writes: statements before the first revision (the
    runner's ``SET lock_timeout``, the version table), then each revision's; and the
    application's models the env passed (None: none, or an env.py not run by blockmon)."""

    preamble: list[Statement]
    revisions: list[Revision]
    models: Models | None = None


def selected(script: ScriptDirectory, rev_range: str | None) -> tuple[str, set[str]]:
    """The upper end to write SQL up to and the revisions ``rev_range`` names: none means
    every revision, ``A:B`` those after A up to B, ``REV`` that revision alone."""
    chosen: Iterable[Script | None]
    try:
        if rev_range is None:
            upper = "heads"
            chosen = script.iterate_revisions("heads", "base")
        elif ":" in rev_range:
            lower, _, upper = rev_range.partition(":")
            if not lower or not upper:
                raise UsageError(f"lint: range {rev_range!r} must be FROM:TO")
            chosen = script.iterate_revisions(upper, lower)
        else:
            upper = rev_range
            chosen = script.get_revisions(rev_range)
        names = {r.revision for r in chosen if r is not None}
    except (CommandError, RevisionError) as error:
        raise UsageError(f"lint: revision: {' '.join(str(error).split())}") from None
    if not names:
        raise UsageError(f"lint: {rev_range or 'the chain'} holds no revision")
    return upper, names


def chain_sql(cfg: Config, upper: str, settings: MigrationSettings) -> ChainSql:
    """Offline SQL from base to ``upper``, cut at Alembic's step comments and parsed."""
    from blockmon.migrations.api import MODELS_KEY, SETTINGS_KEY

    script = ScriptDirectory.from_config(cfg)
    cfg.attributes[SETTINGS_KEY] = settings
    cfg.attributes.pop(MODELS_KEY, None)  # blockmon's runner sets it when env.py runs
    out = io.StringIO()
    quiet = logging.getLogger("alembic")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(out):
            command.upgrade(cfg, f"base:{upper}", sql=True)
    except (CommandError, RevisionError) as error:
        raise UsageError(f"lint: {' '.join(str(error).split())}") from None
    except Exception as error:  # the revision's own code, run in offline mode
        running = [line for line in out.getvalue().splitlines() if line.startswith(_STEP)]
        where = f"revision {running[-1].rpartition('->')[2].strip()}" if running else "env.py"
        raise MigrationError(
            f"lint: {where} cannot be written as SQL (Alembic's offline mode): "
            f"{type(error).__name__}: {redact(' '.join(str(error).split()))}"
        ) from None
    finally:
        quiet.setLevel(level)
    preamble: list[Statement] = []
    revisions: list[Revision] = []
    for name, text in _segments(out.getvalue()):
        statements = _parse(text, name)
        if name is None:
            preamble.extend(statements)
            continue
        found = script.get_revision(name)
        assert found is not None
        doc = found.doc or ""
        revisions.append(Revision(name, found.path, doc, statements))
    return ChainSql(preamble, revisions, Models.of(cfg.attributes.get(MODELS_KEY)))


def _segments(output: str) -> Iterator[tuple[str | None, str]]:
    """(revision, its SQL): the step comment reads ``-- Running upgrade A, B -> C``."""
    name: str | None = None
    lines: list[str] = []
    for line in output.splitlines():
        if line.startswith(_STEP):
            yield name, "\n".join(lines)
            name, lines = line.rpartition("->")[2].strip(), []
        else:
            lines.append(line)
    yield name, "\n".join(lines)


def _parse(text: str, revision: str | None) -> list[Statement]:
    data = text.encode()
    try:
        raws = parse_sql(text)
    except ParseError as error:
        where = f"revision {revision}" if revision else "the preamble"
        raise MigrationError(f"lint: {where}: PostgreSQL cannot parse its SQL: {error}") from None
    statements = []
    for raw in raws:
        if raw.stmt is None:
            continue
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(data)
        sql = " ".join(data[start:end].decode().split())
        statements.append(Statement(raw.stmt, sql))
    return statements
