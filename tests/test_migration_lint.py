"""``blockmon db lint``: the corpus's verdicts (no false positive, no false negative), the
measured locks agreeing with the static rules, markers, exit codes, JSON and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from blockmon.config.settings import MigrationSettings, PostgresSettings, Settings
from blockmon.migrations.lint import LintReport, lint
from blockmon.migrations.lint.measure import measure
from tests.test_migrations_cli import ROOT, blockmon, dsn, environ, fetch

CORPUS = ROOT / "tests" / "migration_corpus"
EXAMPLE = ROOT / "examples" / "fastapi_service"


def corpus_report() -> LintReport:
    return lint(Config(str(CORPUS / "alembic.ini")), None, MigrationSettings())


def verdicts() -> dict[str, tuple[list[str], list[str]]]:
    """What each corpus revision says the lint must find: (open rules, accepted rules)."""
    script = ScriptDirectory.from_config(Config(str(CORPUS / "alembic.ini")))
    return {
        r.revision: (sorted(r.module.expected), sorted(r.module.accepted))
        for r in script.walk_revisions()
    }


def test_the_corpus_gets_exactly_the_expected_verdicts() -> None:
    expected = verdicts()
    dangerous = [rev for rev, (rules, _) in expected.items() if rules]
    safe = [rev for rev, (rules, accepted) in expected.items() if not rules and not accepted]
    assert len(dangerous) >= 25 and len(safe) >= 25, (len(dangerous), len(safe))
    report = corpus_report()
    found: dict[str, tuple[list[str], list[str]]] = {rev: ([], []) for rev in expected}
    for finding in report.findings:
        found[finding.revision][finding.accepted is not None].append(finding.rule)
    found = {rev: (sorted(o), sorted(a)) for rev, (o, a) in found.items()}
    false_positives = {r: found[r] for r in expected if set(found[r][0]) - set(expected[r][0])}
    false_negatives = {r: found[r] for r in expected if set(expected[r][0]) - set(found[r][0])}
    assert false_positives == {} and false_negatives == {}
    assert found == expected
    every_rule = {f.rule for f in report.findings}
    from blockmon.migrations.lint.rules import RULES

    assert every_rule == set(RULES)  # the corpus exercises every rule


def test_each_finding_names_revision_statement_lock_why_and_recipe() -> None:
    report = corpus_report()
    (index,) = [f for f in report.findings if f.revision == "d01"]
    assert index.statement == "CREATE INDEX ix_items_name ON items (name)"
    assert index.lock == "SHARE on items"
    assert "INSERT, UPDATE and DELETE" in index.why
    assert "create_index_concurrently" in index.recipe
    assert index.path.endswith("01_d01.py")


def test_an_accept_marker_covers_its_own_revision_only() -> None:
    report = corpus_report()
    same_rule = [f for f in report.findings if f.rule == "index-not-concurrent"]
    assert {f.revision for f in same_rule if f.accepted} == {"a01"}
    assert {"d01", "d02", "d28"} <= {f.revision for f in same_rule if f.accepted is None}


async def test_the_measured_locks_and_rewrites_agree_with_the_static_verdicts(
    blockmon_settings: Settings,
) -> None:
    report = corpus_report()

    async def scratch() -> set[str]:
        rows = await fetch(
            blockmon_settings.postgres,
            "SELECT datname FROM pg_database WHERE datname LIKE 'blockmon_lint_%'",
        )
        return {r[0] for r in rows}

    before = await scratch()
    measured = await measure(report, blockmon_settings)
    assert await scratch() == before  # the scratch database is dropped
    disagree = [
        (f.revision, f.rule, measured.of(f)) for f in report.findings if not measured.agrees(f)
    ]
    assert disagree == []
    assert measured.unexplained(report) == []  # no safe revision rewrote a table
    rewrote = {m.revision for m in measured.statements.values() if m.rewritten}
    assert rewrote == {f.revision for f in report.findings if f.rewrites}
    # a lock the static rules name for the referenced table too, really taken there
    (fk,) = [f for f in report.findings if f.revision == "d11"]
    seen = measured.of(fk)
    assert seen is not None and seen.locks is not None
    assert "ShareRowExclusiveLock" in seen.locks["owners"]


def lint_cli(*args: str, cwd: Path = ROOT, **env: str) -> tuple[int, str, str]:
    result = blockmon(
        "db", "lint", *args, env=environ(BLOCKMON_LOG_LEVEL="warning", **env), cwd=cwd
    )
    return result.returncode, result.stdout, result.stderr


def test_blockmon_chain_and_the_example_service_lint_clean() -> None:
    code, out, err = lint_cli()
    assert code == 0, out + err
    assert "0 finding(s) in 0 of 1 revision(s)" in out
    code, out, err = lint_cli("--alembic-config", "alembic.ini", "--json", cwd=EXAMPLE)
    assert code == 0, out + err
    assert json.loads(out) == {"revisions": ["a001"], "findings": [], "accepted": []}


def test_json_output_and_the_exit_code_for_findings() -> None:
    ini = str(CORPUS / "alembic.ini")
    code, out, err = lint_cli("--alembic-config", ini, "--json")
    assert code == 1, err
    data = json.loads(out)
    assert len(data["revisions"]) == len(verdicts())
    assert {f["rule"] for f in data["findings"]} >= {"index-not-concurrent", "volatile-default"}
    assert [f["revision"] for f in data["accepted"]] == ["a01"]
    first = data["findings"][0]
    assert set(first) == {
        "revision", "path", "rule", "statement", "lock", "rewrites", "detail", "why", "recipe",
        "accepted",
    }  # fmt: skip
    # a range: the revisions after s01 up to s05 are all safe
    code, out, err = lint_cli("--alembic-config", ini, "--json", "s01:s05")
    assert code == 0, out + err
    assert json.loads(out)["revisions"] == ["s02", "s03", "s04", "s05"]
    # one revision
    code, out, _ = lint_cli("--alembic-config", ini, "--json", "d03")
    assert code == 1 and [f["rule"] for f in json.loads(out)["findings"]] == ["column-type-rewrite"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("nope",), ("lint: revision:", "nope")),
        (("d03:nope",), ("lint: revision:", "nope")),
        (("d03:",), ("REV_RANGE",)),
        (("--alembic-config", "missing/alembic.ini"), ("--alembic-config", "missing/alembic.ini")),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    ini = (
        ("--alembic-config", str(CORPUS / "alembic.ini")) if "--alembic-config" not in args else ()
    )
    code, out, err = lint_cli(*ini, *args)
    assert code == 2, out + err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("blockmon: error: ")
    for needle in needles:
        assert needle in err, err


def chain_copy(tmp_path: Path, *revisions: str) -> Path:
    """A chain of a few corpus revisions (base first) under tmp_path."""
    copy = tmp_path / "chain"
    (copy / "versions").mkdir(parents=True)
    for name in ("alembic.ini", "env.py", "script.py.mako"):
        shutil.copy(CORPUS / name, copy / name)
    previous = None
    for revision in revisions:
        (source,) = (CORPUS / "versions").glob(f"*_{revision}.py")
        module = source.read_text()
        if previous is not None:  # linked to the one before it in this copy
            start = module.index("down_revision = ")
            end = module.index("\n", start)
            module = f'{module[:start]}down_revision = "{previous}"{module[end:]}'
        (copy / "versions" / source.name).write_text(module)
        previous = revision
    return copy


def test_a_marker_without_a_reason_or_for_an_unknown_rule_is_a_usage_error(tmp_path: Path) -> None:
    chain = chain_copy(tmp_path, "c000", "d01")
    (revision,) = (chain / "versions").glob("*_d01.py")
    source = revision.read_text()
    revision.write_text(
        source.replace(
            'revision = "d01"', '# blockmon: accept index-not-concurrent\nrevision = "d01"'
        )
    )
    code, _, err = lint_cli("--alembic-config", str(chain / "alembic.ini"))
    one_line = err.strip().splitlines()
    assert code == 2 and len(one_line) == 1, err
    assert "accept marker for index-not-concurrent gives no reason" in err
    revision.write_text(
        source.replace(
            'revision = "d01"', '# blockmon: accept no-such-rule -- why\nrevision = "d01"'
        )
    )
    code, _, err = lint_cli("--alembic-config", str(chain / "alembic.ini"))
    assert code == 2 and "unknown rule 'no-such-rule'" in err, err


PLAIN_ENV = '''"""An env.py that does not go through blockmon: no lock_timeout is set."""
from alembic import context

context.configure(url="postgresql://", literal_binds=True, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
'''


def test_missing_lock_timeout_applies_only_where_nothing_sets_one(tmp_path: Path) -> None:
    chain = chain_copy(tmp_path, "c000", "d01")
    ini = chain / "alembic.ini"
    rules = [f.rule for f in lint(Config(str(ini)), None, MigrationSettings()).findings]
    assert rules == ["index-not-concurrent"]  # blockmon's runner sets migrations.lock_timeout
    (chain / "env.py").write_text(PLAIN_ENV)
    rules = [f.rule for f in lint(Config(str(ini)), None, MigrationSettings()).findings]
    assert rules == ["missing-lock-timeout", "index-not-concurrent"]


async def test_measure_from_the_command_line_on_the_runs_server(
    blockmon_fresh_database: PostgresSettings,
) -> None:
    code, out, err = await asyncio.to_thread(
        lint_cli,
        "--alembic-config",
        str(CORPUS / "alembic.ini"),
        "--measure",
        "--json",
        DATABASE_URL=dsn(blockmon_fresh_database),
    )
    assert code == 1, err
    measured = json.loads(out)["measured"]
    assert measured["disagreements"] == [] and measured["unexplained_rewrites"] == []
    by_statement = {m["statement"]: m for m in measured["statements"]}
    assert by_statement["CREATE INDEX ix_items_name ON items (name)"]["locks"] == {
        "items": ["SHARE"]
    }


def test_measure_against_a_server_that_does_not_answer_is_one_line_without_the_password() -> None:
    url = "postgresql://postgres:hunter2-lint-secret@127.0.0.1:1/x"
    code, out, err = lint_cli("--measure", DATABASE_URL=url)
    assert code == 1, out + err
    assert "Traceback" not in err and "hunter2-lint-secret" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blockmon: error: lint --measure: "), err
    assert "127.0.0.1" in lines[0], err


READS_ROWS = '''"""reads rows: no SQL to write offline"""

from alembic import op

revision = "b1"
down_revision = "c000"


def upgrade() -> None:
    op.get_bind().exec_driver_sql("SELECT id FROM items").fetchall()
'''


def test_a_revision_that_cannot_be_written_as_sql_is_named_in_one_line(tmp_path: Path) -> None:
    chain = chain_copy(tmp_path, "c000")
    (chain / "versions" / "01_b1.py").write_text(READS_ROWS)
    code, out, err = lint_cli("--alembic-config", str(chain / "alembic.ini"))
    assert code == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "lint: revision b1 cannot be written as SQL (Alembic's offline mode)" in lines[0]


MODELS_ENV = """from alembic import context
from sqlalchemy import Column, Integer, MetaData, Table, Text

from blockmon.migrations import run

models = MetaData()
Table("items", models, Column("id", Integer, primary_key=True){columns})
run(context{models})
"""


@pytest.mark.parametrize(
    ("columns", "models", "detail"),
    [
        (', Column("legacy", Text)', ", target_metadata=models",
         "items.legacy is still in the application's models (target_metadata)"),
        ("", ", target_metadata=models", None),
        ("", "", "env.py gives the lint no models (target_metadata), so whether they still "
         "have items.legacy is unknown"),
        ("", ", target_metadata=MetaData()", "env.py gives the lint no models"),
    ],
    ids=["models-still-have-it", "models-dropped-it", "no-models", "empty-models"],
)  # fmt: skip
def test_drop_column_goes_by_the_applications_models(
    tmp_path: Path, columns: str, models: str, detail: str | None
) -> None:
    chain = chain_copy(tmp_path, "c000", "d22")
    (chain / "env.py").write_text(MODELS_ENV.format(columns=columns, models=models))
    code, out, err = lint_cli("--alembic-config", str(chain / "alembic.ini"))
    if detail is None:
        assert code == 0 and "0 finding(s) in 0 of 2 revision(s)" in out, out + err
        return
    assert code == 1, out + err
    assert "  drop-column: ALTER TABLE items DROP COLUMN legacy\n" in out
    assert f"    detail: {detail}" in out
    assert "why: drop of a column still in the application's models" in out


def documented(section: str, next_section: str) -> str:
    text = (ROOT / "docs" / "migrations.md").read_text()
    return text[text.index(section) : text.index(next_section)]


@pytest.mark.slow
def test_the_documented_ci_steps_and_application_tests_run(
    blockmon_settings: Settings, tmp_path: Path
) -> None:
    """docs/migrations.md's CI steps run in a copy of the example service, then its two
    test examples saved as the service's test file and run by pytest with the plugin."""
    service = tmp_path / "service"
    shutil.copytree(EXAMPLE, service, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    server = blockmon_settings.postgres
    # the run's server as a URL: an embedded one listens on a socket (isolated runs)
    (service / "ci.yml").write_text(f"postgres:\n  url: {json.dumps(dsn(server))}\n")
    env = environ(BLOCKMON_LOG_LEVEL="warning", PYTHONPATH=str(service))
    env.pop("BLOCKMON_CONFIG")  # the service's own config.yml, as in its CI
    steps = re.findall(r"- run: (blockmon .+)", documented("### In CI", "### In the app"))
    assert len(steps) == 2 and "--measure -c ci.yml" in steps[1], steps
    for step in steps:
        result = blockmon(*shlex.split(step)[1:], env=env, cwd=service)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
        assert "0 finding(s) in 0 of 1 revision(s)" in result.stdout, result.stdout
    assert "measured" not in steps[0]

    blocks = re.findall(r"```python\n(.*?)```", documented("### In the app", "### Building"), re.S)
    assert len(blocks) == 2, blocks
    (service / "test_migrations.py").write_text("\n\n".join(blocks))
    if blockmon_settings.redis.url is not None:  # an embedded Redis: its socket
        env["REDIS_URL"] = blockmon_settings.redis.url.get_secret_value()
    env["DATABASE_URL"] = dsn(server)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "blockmon.testing",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
         "--rootdir", str(service), "-c", os.devnull, "test_migrations.py"],
        capture_output=True, text=True, timeout=600, cwd=service, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
