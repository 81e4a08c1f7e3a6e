"""``blockmon db lint``: the revisions' SQL from Alembic's offline mode, parsed with
PostgreSQL's own parser, checked against the operations that block or rewrite tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from alembic.config import Config
from alembic.script import ScriptDirectory

from blockmon.config.settings import MigrationSettings
from blockmon.migrations.lint.accept import acceptances
from blockmon.migrations.lint.catalog import Catalog
from blockmon.migrations.lint.rules import RULES, Finding, check_revision, lock_timeout_in
from blockmon.migrations.lint.script import ChainSql, Revision, chain_sql, selected

__all__ = ["RULES", "Finding", "LintReport", "lint"]


@dataclass
class LintReport:
    """The revisions linted (in upgrade order) and their findings, accepted or not."""

    chain: ChainSql
    linted: list[Revision]
    findings: list[Finding] = field(default_factory=list)

    @property
    def open(self) -> list[Finding]:
        return [f for f in self.findings if f.accepted is None]


def lint(cfg: Config, rev_range: str | None, settings: MigrationSettings) -> LintReport:
    """Lint the revisions ``rev_range`` selects (all by default) of ``cfg``'s chain."""
    script = ScriptDirectory.from_config(cfg)
    upper, names = selected(script, rev_range)
    chain = chain_sql(cfg, upper, settings)
    timeout = False
    for statement in chain.preamble:
        setting = lock_timeout_in(statement)
        timeout = timeout if setting is None else setting
    catalog = Catalog()
    report = LintReport(chain, [r for r in chain.revisions if r.revision in names])
    for revision in chain.revisions:
        found = check_revision(revision, catalog, timeout, chain.models)
        if revision.revision not in names:
            continue
        accepted = acceptances(revision.path)
        report.findings += [dataclasses.replace(f, accepted=accepted.get(f.rule)) for f in found]
    return report
