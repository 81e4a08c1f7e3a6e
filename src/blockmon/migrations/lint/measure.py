"""``blockmon db lint --measure``: the chain applied to a scratch database (created and
dropped here), the locks each statement of a linted revision really holds (pg_locks inside
the revision's transaction) and the tables it rewrote (a new relfilenode)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pglast import ast

from blockmon.config.secrets import redact
from blockmon.config.settings import PostgresSettings, Settings, validate
from blockmon.errors import MigrationError
from blockmon.migrations.lint import LintReport
from blockmon.migrations.lint.rules import MODE_NAMES, Finding
from blockmon.migrations.lint.script import Revision

_TABLES = """
SELECT c.oid, c.relname, c.relfilenode FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""
_HELD = """
SELECT l.relation, l.mode FROM pg_locks l
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND l.relation = ANY($1::oid[])
"""
_FILES = "SELECT oid, relfilenode FROM pg_class WHERE oid = ANY($1::oid[])"
_TIMEOUT = 30.0  # per statement of the scratch database: a chain's DDL on empty tables


@dataclass
class Measured:
    """One statement of a linted revision: the locks held on tables that existed before
    the revision once it ran (None outside a transaction), the tables it rewrote, and the
    lock_timeout it ran under."""

    revision: str
    index: int
    sql: str
    locks: dict[str, set[str]] | None
    rewritten: set[str]
    lock_timeout: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "statement": self.sql,
            "locks": None
            if self.locks is None
            else {
                t: sorted(MODE_NAMES[m] for m in modes) for t, modes in sorted(self.locks.items())
            },
            "rewritten": sorted(self.rewritten),
            "lock_timeout": self.lock_timeout,
        }


@dataclass
class Measurement:
    statements: dict[tuple[str, int], Measured] = field(default_factory=dict)

    def of(self, finding: Finding) -> Measured | None:
        return self.statements.get((finding.revision, finding.index))

    def agrees(self, finding: Finding) -> bool:
        """The lock the rule names was held, the rewrite it names happened (or not), and
        a missing lock_timeout was indeed 0."""
        seen = self.of(finding)
        if seen is None:
            return False
        if finding.rule == "missing-lock-timeout":
            return seen.lock_timeout == "0"
        if finding.rewrites != bool(seen.rewritten):
            return False
        if seen.locks is None:  # outside a transaction: only the rewrite is seen
            return True
        return all(mode in seen.locks.get(table, set()) for table, mode in finding.locks)

    def unexplained(self, report: LintReport) -> list[Measured]:
        """Statements that rewrote a table with no finding saying so."""
        said = {(f.revision, f.index) for f in report.findings if f.rewrites}
        return [m for key, m in self.statements.items() if m.rewritten and key not in said]

    def as_dict(self, report: LintReport) -> dict[str, Any]:
        return {
            "statements": [m.as_dict() for m in self.statements.values()],
            "disagreements": [
                {"revision": f.revision, "rule": f.rule, "statement": f.statement}
                for f in report.findings
                if not self.agrees(f)
            ],
            "unexplained_rewrites": [m.as_dict() for m in self.unexplained(report)],
        }


async def measure(report: LintReport, settings: Settings) -> Measurement:
    """Apply the chain from base on a scratch database on the migration server."""
    from blockmon.config.failures import connection_failure
    from blockmon.migrations.api import migration_mapping
    from blockmon.provisioning.servers import connect, postgres_address

    server = validate(PostgresSettings, migration_mapping(settings)["postgres"], "postgres")
    name = f"blockmon_lint_{secrets.token_hex(6)}"
    try:
        admin = await connect(server, timeout=server.connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        failure = connection_failure(
            error,
            address=postgres_address(server),
            timeout=("postgres.connect_timeout", server.connect_timeout),
        )
        raise MigrationError(f"lint --measure: {failure}") from None
    try:
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.PostgresError as error:
            raise MigrationError(
                f"lint --measure: cannot create the scratch database: {type(error).__name__}: "
                f"{redact(' '.join(str(error).split()))}"
            ) from None
        try:
            conn = await connect(server, database=name, timeout=_TIMEOUT)
            try:
                return await _apply(conn, report)
            finally:
                await conn.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _apply(conn: Any, report: LintReport) -> Measurement:
    measurement = Measurement()
    linted = {r.revision for r in report.linted}
    where = "the preamble"
    try:
        for statement in report.chain.preamble:
            if not isinstance(statement.node, ast.TransactionStmt):
                await conn.execute(statement.sql)
        for revision in report.chain.revisions:
            where = f"revision {revision.revision}"
            await _revision(conn, revision, revision.revision in linted, measurement)
    except asyncpg.PostgresError as error:
        raise MigrationError(
            f"lint --measure: {where} failed on the scratch database: "
            f"{type(error).__name__}: {redact(' '.join(str(error).split()))}"
        ) from None
    return measurement


def _outside_transaction(node: ast.Node) -> bool:
    """Statements PostgreSQL refuses inside a transaction block."""
    if isinstance(node, ast.IndexStmt | ast.ReindexStmt | ast.DropStmt):
        return bool(getattr(node, "concurrent", False)) or any(
            o.defname == "concurrently" for o in getattr(node, "params", None) or ()
        )
    return isinstance(node, ast.VacuumStmt)


async def _revision(conn: Any, revision: Revision, record: bool, into: Measurement) -> None:
    rows = await conn.fetch(_TABLES)
    names = {r["oid"]: r["relname"] for r in rows}
    files = {r["oid"]: r["relfilenode"] for r in rows}
    oids = list(names)
    tx = conn.transaction()
    await tx.start()
    for index, statement in enumerate(revision.statements):
        node = statement.node
        if isinstance(node, ast.TransactionStmt):
            continue
        alone = _outside_transaction(node)
        if alone:
            await tx.commit()
        timeout = await conn.fetchval("SELECT current_setting('lock_timeout')")
        await conn.execute(statement.sql, timeout=_TIMEOUT)
        locks: dict[str, set[str]] | None = None
        if alone:
            tx = conn.transaction()
            await tx.start()
        else:
            locks = {}
            for row in await conn.fetch(_HELD, oids):
                locks.setdefault(names[row["relation"]], set()).add(row["mode"])
        now = {r["oid"]: r["relfilenode"] for r in await conn.fetch(_FILES, oids)}
        rewritten = {names[o] for o, node_file in now.items() if node_file != files[o]}
        files.update(now)
        if record:
            into.statements[(revision.revision, index)] = Measured(
                revision.revision, index, statement.sql, locks, rewritten, timeout
            )
    await tx.commit()
