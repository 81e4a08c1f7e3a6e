"""The status page at ``/``: the health report as one HTML page for a person.

Server-rendered, inline CSS, no script and no external asset; it refreshes itself every
`REFRESH_SECONDS`. Every value shown is redacted and HTML-escaped, since observed values
and reasons come from servers. Without details (the same policy as ``/health``) it
shows the overall status only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

from blockmon.config.secrets import redact
from blockmon.health.checker import StateChange
from blockmon.health.model import CheckResult, Observation, Report, Status
from blockmon.health.render import value_text

REFRESH_SECONDS = 5

_STYLE = """
:root{--pass:#1a7f37;--warn:#9a6700;--fail:#cf222e;--line:#d0d7de;--dim:#57606a}
*{box-sizing:border-box}
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 background:#f6f8fa;color:#1f2328}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.3rem;margin:.2rem 0 1rem;display:flex;gap:.6rem;align-items:center;
 flex-wrap:wrap}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff;
 font-weight:600;text-transform:uppercase;font-size:.8rem;letter-spacing:.04em}
.pass{background:var(--pass)}.warn{background:var(--warn)}.fail{background:var(--fail)}
.checks{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:.8rem}
.check{background:#fff;border:1px solid var(--line);border-left:.4rem solid var(--line);
 border-radius:.4rem;padding:.6rem .8rem}
.check.pass{border-left-color:var(--pass);background:#fff}
.check.warn{border-left-color:var(--warn);background:#fff}
.check.fail{border-left-color:var(--fail);background:#fff5f5}
.check h3{font-size:1rem;margin:0 0 .3rem;display:flex;justify-content:space-between;
 gap:.5rem;overflow-wrap:anywhere}
.meta{color:var(--dim);font-size:.85rem}
.reason{color:var(--fail);font-weight:600;overflow-wrap:anywhere;margin:.3rem 0}
.check.warn .reason{color:var(--warn)}
dl{margin:.4rem 0 0;display:grid;grid-template-columns:auto 1fr;gap:.15rem .6rem}
dt{color:var(--dim)}dd{margin:0;overflow-wrap:anywhere}
.bar{height:.6rem;background:#eaeef2;border-radius:.3rem;overflow:hidden;display:flex;
 margin:.2rem 0}
.bar .used{background:#0969da}.bar .idle{background:#8cc4ff}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
td,th{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:left;
 vertical-align:top;font-size:.9rem;overflow-wrap:anywhere}
@media (max-width:40rem){.changes thead{display:none}
 .changes tr,.changes td{display:block}.changes tr{border-bottom:1px solid var(--line)}
 .changes td{border:0;padding:.15rem .5rem}
 .changes td::before{content:attr(data-label) ": ";color:var(--dim)}}
footer{margin:1.5rem 0 .5rem;color:var(--dim)}
a{color:#0969da}
"""


def page(report: Report, changes: Sequence[StateChange], *, details: bool, at: datetime) -> str:
    """The whole page for ``report``; ``changes`` and the checks only with ``details``."""
    status = report.status
    body = [
        f'<h1>blockmon {_badge(status)}<span class="meta">{_time(at)}</span></h1>',
    ]
    if details:
        body.append('<h2>Checks</h2><div class="checks">')
        body.extend(_check(result) for result in report.results)
        body.append("</div>")
        body.append(_changes(changes))
    else:
        body.append(
            '<p class="meta">Check details are hidden by <code>monitoring.details</code>.</p>'
        )
    body.append(
        '<footer><a href="health">/health</a> (JSON) · <a href="metrics">/metrics</a> · '
        f"refreshes every {REFRESH_SECONDS} s</footer>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no /favicon.ico request (a 404 in the console)
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>blockmon: {escape(str(status))}</title><style>{_STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>"
    )


def _text(value: Any) -> str:
    """Any value as safe HTML text: redacted, then escaped."""
    return escape(redact(str(value)))


def _badge(status: Status) -> str:
    return f'<span class="badge {status}" data-status="{status}">{status}</span>'


def _time(at: datetime) -> str:
    return escape(at.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _check(result: CheckResult) -> str:
    kind = "" if result.critical else " (non-critical)"
    reason = f'<p class="reason">{_text(result.reason)}</p>' if result.reason else ""
    if result.pending:
        reason += f'<p class="meta">pending: {_text(result.pending)}</p>'
    rows = "".join(_observation(obs) for obs in result.observations)
    values = f"<dl>{rows}</dl>" if rows else ""
    return (
        f'<section class="check {result.status}" data-component="{_text(result.component)}">'
        f"<h3><span>{_text(result.component)}{kind}</span>{_badge(result.status)}</h3>"
        f'<div class="meta">{result.response_time * 1000:.1f} ms · '
        f"{escape(result.checked_at.strftime('%H:%M:%S'))}</div>{reason}{values}</section>"
    )


def _observation(obs: Observation) -> str:
    value = obs.value
    if isinstance(value, dict) and {"used", "idle", "max"} <= value.keys():
        shown = _bar(value)
    else:
        shown = _text(value_text(obs))
    return f"<dt>{_text(obs.measurement)}</dt><dd>{shown}</dd>"


def _bar(pool: dict[str, Any]) -> str:
    """Pool usage: used (dark) and idle (light) connections out of max."""
    used, idle, limit = pool["used"], pool["idle"], pool["max"]
    if not (isinstance(used, int) and isinstance(idle, int) and isinstance(limit, int)):
        return _text(pool)
    scale = max(limit, used + idle, 1)
    waiting = pool.get("waiting")
    label = f"{used} used · {idle} idle · {limit} max" + (
        f" · {waiting} waiting" if waiting else ""
    )
    return (
        f'<div class="bar" role="img" aria-label="{_text(label)}">'
        f'<span class="used" style="width:{100 * used / scale:.1f}%"></span>'
        f'<span class="idle" style="width:{100 * idle / scale:.1f}%"></span></div>'
        f'<span class="meta">{_text(label)}</span>'
    )


def _changes(changes: Iterable[StateChange]) -> str:
    rows = [
        f'<tr><td data-label="time">{_time(c.at)}</td>'
        f'<td data-label="check">{_text(c.component)}</td>'
        f'<td data-label="change">{_text(c.previous or "unknown")} → {_badge(c.status)}</td>'
        f'<td data-label="reason">{_text(c.reason or "")}</td></tr>'
        for c in changes
    ]
    if not rows:
        return '<h2>Last changes</h2><p class="meta">No change of state since start.</p>'
    return (
        '<h2>Last changes</h2><table class="changes"><thead><tr><th>time</th><th>check</th>'
        f"<th>change</th><th>reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
