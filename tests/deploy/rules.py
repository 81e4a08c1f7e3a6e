"""The shipped rules and dashboard as data, and the PromQL in them, for the deploy tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "blockmon-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "blockmon-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "blockmon.json"
RUNBOOK = DEPLOY.parent / "docs" / "runbook.md"

# Grafana's variables, as the test's Prometheus (job "blockmon") resolves them.
VARIABLES = {"$__rate_interval": "1m", "$job": "blockmon", "$instance": ".*"}

# A comparison with a number filters series away unless they cross the threshold; with
# `bool` it keeps every series, so an alert's expression can be seen to select something.
_FILTER = re.compile(r"(==|!=|>=|<=|>|<)\s*(?=-?[0-9])")


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def unfiltered(expr: str) -> str:
    """An alert's expression with each threshold as a `bool` comparison."""
    return _FILTER.sub(lambda m: f"{m.group(1)} bool ", expr)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    """Every panel query, with Grafana's variables resolved."""
    out = []
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            out.append(expr)
    return out


def expressions() -> dict[str, str]:
    """Every expression to evaluate, named: recording rules as they are, alerts
    unfiltered, dashboard panels with variables resolved."""
    named: dict[str, str] = {}
    for rule in rules():
        if "record" in rule:
            named[f"record {rule['record']}"] = rule["expr"]
        else:
            named[f"alert {rule['alert']}"] = unfiltered(rule["expr"])
    for index, expr in enumerate(dashboard_exprs()):
        named[f"panel query {index}: {expr[:60]}"] = expr
    return named


_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{")
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "changes", "histogram_quantile",
    "and", "or", "unless", "bool",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects. Every selector must carry a `{...}`
    matcher: any other bare word (but PromQL's own) fails here, so none slips past."""
    names = set(_SELECTOR.findall(expr))
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", _CLAUSE.sub(" ", expr))
    words = set(_WORD.findall(rest)) - names - PROMQL_WORDS
    assert not words, f"{expr}: bare words {sorted(words)} (give every selector a matcher)"
    return names
