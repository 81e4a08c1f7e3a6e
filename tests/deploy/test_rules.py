"""The alerting and recording rules under promtool: syntax, and the unit tests that fire
and hold back every alert; each alert documented and runbooked."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml

from tests.deploy.rules import RULE_TESTS, RULES, RUNBOOK, alerts, rules


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
