"""Flyway's ``validate`` for Alembic: the revisions blockmon applies are recorded with a
checksum of their file, so an applied revision whose file changed since is reported
(``blockmon db check``, health's ``postgres:schema``) with what changed.

What is summed is the revision's Python program, ``ast.unparse`` of its module with
comments and docstrings left out (`canonical`), not its offline SQL: the file is what a
person edits and what Alembic runs, so the diff shown is in the reviewer's own terms;
it exists for every revision, including data migrations that cannot be written as SQL;
and it changes only when the file does, whereas the SQL Alembic writes also moves with
the SQLAlchemy and Alembic versions, the env.py and the settings. Reformatting, comments
(accept markers of the lint included), docstrings and quote style therefore do not count
as a change; any change to the code does, in ``upgrade()``, ``downgrade()`` or a helper.

The checksums sit next to the chain's version table, in ``<version_table>_checksums``
(migration bookkeeping like the version table itself), created by the first upgrade
blockmon runs for that chain, written in each revision's own transaction and removed
again by its downgrade. A stamp records nothing: nothing of the file was run.
"""

from __future__ import annotations

import ast
import asyncio
import difflib
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, Text, func, inspect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from blockmon.config.secrets import MASK, redact
from blockmon.health.checks.schema import ChangedProbe

_SUFFIX = "_checksums"
_SUMMARY_LIMIT = 300  # characters of "what changed" on a revision's line
_CONTEXT = 40  # characters shown before an edit (half as many after it)
_SQL_SECRET = re.compile(
    r"(?P<key>\b(?:password|secret|token)\s+)(?P<q>\\?['\"])(?P<value>.*?)(?P=q)", re.IGNORECASE
)


def checksum_table(version_table: str) -> str:
    """Where the checksums of the chain recorded in ``version_table`` are kept."""
    return f"{version_table}{_SUFFIX}"


@cache
def _table(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("revision", String(255), primary_key=True),
        Column("checksum", String(64), nullable=False),
        Column("source", Text, nullable=False),  # the canonical source, to say what changed
        Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


@dataclass(frozen=True)
class Fingerprint:
    """A revision file's canonical source and its sha256."""

    checksum: str
    source: str


def canonical(source: str) -> str:
    """The module's program: no comments, no docstrings, one way of writing each thing."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = node.body[0] if node.body else None
        value = first.value if isinstance(first, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def fingerprint(path: str) -> Fingerprint:
    """The fingerprint of the revision file at ``path`` (read again only when it changed)."""
    stat = os.stat(path)
    return _fingerprint(path, stat.st_mtime_ns, stat.st_size)


@cache
def _fingerprint(path: str, _mtime: int, _size: int) -> Fingerprint:
    with open(path, encoding="utf-8") as file:
        source = canonical(file.read())
    return Fingerprint(hashlib.sha256(source.encode()).hexdigest(), source)


def record(conn: Connection, version_table: str, revision: Script) -> None:
    """Record ``revision``'s file as applied now (replacing an earlier record)."""
    table = _table(checksum_table(version_table))
    table.create(conn, checkfirst=True)
    now = fingerprint(revision.path)
    values = {"revision": revision.revision, "checksum": now.checksum, "source": now.source}
    statement = insert(table).values(values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.revision],
            set_={
                "checksum": statement.excluded.checksum,
                "source": statement.excluded.source,
                "recorded_at": func.now(),
            },
        )
    )


def forget(conn: Connection, version_table: str, revision: str) -> None:
    """A downgrade took ``revision`` out: its record goes with it."""
    table = _table(checksum_table(version_table))
    if inspect(conn).has_table(table.name):
        conn.execute(table.delete().where(table.c.revision == revision))


def recorder(version_table: str) -> Callable[..., None]:
    """Alembic's ``on_version_apply`` callback: runs in each revision's transaction."""

    def on_apply(*, ctx: Any, step: Any, **_: Any) -> None:
        if step.is_stamp or ctx.as_sql:
            return
        if step.is_upgrade:
            record(ctx.connection, version_table, step.up_revision)
        else:
            forget(ctx.connection, version_table, step.up_revision_id)

    return on_apply


@dataclass(frozen=True)
class Changed:
    """An applied revision whose file is no longer what was applied."""

    revision: str
    path: str
    changes: tuple[str, ...]  # what changed in the canonical source, one entry per edit

    def line(self) -> str:
        """One line: the revision, its file, and what changed (capped, redacted)."""
        summary = _masked(" | ".join(self.changes))
        if len(summary) > _SUMMARY_LIMIT:
            summary = f"{summary[: _SUMMARY_LIMIT - 3]}... ({len(self.changes)} changes)"
        return (
            f"revision {self.revision} ({shown(self.path)}) changed since it was applied: {summary}"
        )


@dataclass
class ChecksumReport:
    """The applied revisions of a chain against their files."""

    changed: list[Changed] = field(default_factory=list)
    unrecorded: list[Script] = field(default_factory=list)  # applied before checksums
    recorded: list[str] = field(default_factory=list)  # recorded by this call


def recorded_rows(conn: Connection, version_table: str) -> dict[str, tuple[str, str]]:
    """Revision -> (checksum, canonical source) as recorded; empty without the table."""
    table = _table(checksum_table(version_table))
    if not inspect(conn).has_table(table.name):
        return {}
    rows = conn.execute(table.select())
    return {row.revision: (row.checksum, row.source) for row in rows}


def applied(script: ScriptDirectory, heads: Sequence[str]) -> list[Script]:
    """The revisions ``heads`` stand for (the heads and every ancestor), base first; none
    when a head is not in the files (``db check`` and health say so already)."""
    if not heads:
        return []
    try:
        found = script.iterate_revisions(tuple(heads), "base")
        return [r for r in reversed(list(found)) if r is not None]
    except (CommandError, RevisionError):
        return []


def compare(
    script: ScriptDirectory, heads: Sequence[str], rows: dict[str, tuple[str, str]]
) -> ChecksumReport:
    """Each applied revision's file against its record (reads the files)."""
    report = ChecksumReport()
    for revision in applied(script, heads):
        row = rows.get(revision.revision)
        if row is None:
            report.unrecorded.append(revision)
            continue
        now = fingerprint(revision.path)
        if now.checksum != row[0]:
            report.changed.append(Changed(revision.revision, revision.path, _diff(row[1], now)))
    return report


def record_applied(conn: Connection, version_table: str, revisions: Iterable[Script]) -> list[str]:
    """Record ``revisions`` (applied ones: `db check --record`, ``--accept-change``)."""
    done = []
    for revision in revisions:
        record(conn, version_table, revision)
        done.append(revision.revision)
    return done


def changed_probe(script: Callable[[], ScriptDirectory], version_table: str) -> ChangedProbe:
    """For health: the applied revisions (given the chain's applied heads) whose file
    changed, each as ``revision R changed since it was applied (PATH)``."""

    async def probe(conn: AsyncConnection, heads: Sequence[str]) -> list[str]:
        rows = await conn.run_sync(recorded_rows, version_table)
        if not rows:
            return []
        report = await asyncio.to_thread(compare, script(), heads, rows)
        return [
            f"revision {c.revision} changed since it was applied ({shown(c.path)})"
            for c in report.changed
        ]

    return probe


def _masked(text: str) -> str:
    """`redact`, and SQL's ``PASSWORD 'x'`` form (``ALTER ROLE ... PASSWORD``), which a
    revision may hold and `redact`'s ``key=value`` shapes do not cover."""
    return _SQL_SECRET.sub(lambda m: f"{m['key']}{m['q']}{MASK}{m['q']}", redact(text))


def _diff(recorded: str, now: Fingerprint) -> tuple[str, ...]:
    """Each edit: a statement changed in place as a word diff (git's ``[-old-]{+new+}``,
    with some context), a statement removed as ``-...``, one added as ``+...``."""
    old, new = recorded.splitlines(), now.source.splitlines()
    changes: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            changes += [_word_diff(a, b) for a, b in zip(old[i1:i2], new[j1:j2], strict=True)]
            continue
        changes += [f"-{line.strip()}" for line in old[i1:i2]]
        changes += [f"+{line.strip()}" for line in new[j1:j2]]
    return tuple(changes)


def _word_diff(old: str, new: str) -> str:
    """``...sa.String([-255-]{+200+}), nullable...``: the part that differs, whole words."""
    start = _common(old, new)
    while start and (_inside_word(old, start) or _inside_word(new, start)):
        start -= 1
    end = _common(old[start:][::-1], new[start:][::-1])
    while end and (_inside_word(old, len(old) - end) or _inside_word(new, len(new) - end)):
        end -= 1
    before, after = old[:start].lstrip(), old[len(old) - end :] if end else ""
    before = before if len(before) <= _CONTEXT else f"...{before[-_CONTEXT:]}"
    after = after if len(after) <= _CONTEXT // 2 else f"{after[: _CONTEXT // 2]}..."
    removed, added = old[start : len(old) - end], new[start : len(new) - end]
    return (
        before + (f"[-{removed}-]" if removed else "") + (f"{{+{added}+}}" if added else "") + after
    )


def _common(a: str, b: str) -> int:
    """The length of the prefix ``a`` and ``b`` share."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _inside_word(text: str, at: int) -> bool:
    """Whether position ``at`` falls between two characters of one word."""
    return 0 < at < len(text) and _word(text[at - 1]) and _word(text[at])


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def shown(path: str) -> str:
    """A revision file relative to the working directory when it lies under it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
