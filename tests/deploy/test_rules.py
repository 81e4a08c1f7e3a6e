"""The alerting and recording rules under promtool: syntax, and the unit tests that fire
and hold back every alert; each alert documented and runbooked."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.rules import (
    RULE_TESTS,
    RULES,
    RUNBOOK,
    alerts,
    dashboard,
    dashboard_exprs,
    metric_names,
    panels,
    rules,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    program = shutil.which("promtool")
    assert program, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run(
        [program, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
            # A firing case names the alerting instance, so every other one stays quiet.
            instances = {a["exp_labels"]["instance"] for a in case["exp_alerts"]}
            assert "ok:9464" not in instances
    assert {rule["alert"]: {True, False} for rule in alerts()} == cases


def test_every_alert_has_severity_summary_description_and_runbook_section() -> None:
    runbook = RUNBOOK.read_text()
    sections = set(re.findall(r"^## (\w+)$", runbook, re.MULTILINE))
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert "{{ $labels.instance }}" in notes["summary"], name
        assert "{{ $labels.job }}/{{ $labels.instance }}" in notes["description"], name
        assert notes["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert name in sections, f"docs/runbook.md has no '## {name}'"
        section = runbook.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means**", "**Check**", "**Do**"):
            assert part in section, f"{name}: runbook section lacks {part}"


def test_the_dashboard_is_importable_with_its_variables_and_rows() -> None:
    board = dashboard()
    assert board["uid"] == "blockmon" and board["title"] == "blockmon"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {variables["job"]["type"], variables["instance"]["type"]} == {"query"}
    assert variables["instance"]["includeAll"] and variables["instance"]["allValue"] == ".*"
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == [
        "Health",
        "PostgreSQL pool",
        "Statements",
        "Redis",
        "Cache",
        "Read replicas",
        "Redis cluster nodes",
    ]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            # every query follows the job and instance the operator picked
            assert 'job=~"$job", instance=~"$instance"' in target["expr"], target["expr"]
    heatmaps = [p for p in panels() if p["type"] == "heatmap"]
    assert [t["format"] for p in heatmaps for t in p["targets"]] == ["heatmap"]


def test_metric_names_are_read_from_selectors_and_bare_words_are_refused() -> None:
    expr = 'sum by (le) (rate(postgres_query_duration_seconds_bucket{job=~"x"}[1m])) > 0'
    assert metric_names(expr) == {"postgres_query_duration_seconds_bucket"}
    with pytest.raises(AssertionError, match="bare words"):
        metric_names("rate(postgres_queries_total[1m])")


def test_the_docs_count_and_name_what_is_shipped() -> None:
    monitoring = (RUNBOOK.parent / "monitoring.md").read_text()
    readme = (RUNBOOK.parent.parent / "README.md").read_text()
    queries = len(dashboard_exprs())
    assert f"Each of the {len(rules()) + queries} expressions ({len(rules())} rules" in monitoring
    assert f"the dashboard's {queries} queries" in monitoring
    assert (len(alerts()), len(rules()) - len(alerts())) == (11, 10)
    assert "Eleven alerts" in readme and "ten recording rules" in readme
    for rule in alerts():
        assert f"`{rule['alert']}`" in monitoring, rule["alert"]
