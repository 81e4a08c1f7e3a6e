"""Property-based: whatever YAML document, environment and URLs a user gives,
``blockmon config show`` exits 0 with a valid config, or exits 2 with one line under
`LINE_LIMIT` characters, within hypothesis' deadline, never with a traceback, and
never with the password in it. The budget is fixed (examples, deadline) and failing
examples are kept in ``tests/.hypothesis-examples`` (committed), so CI replays them."""

from __future__ import annotations

import contextlib
import io
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from blockmon.cli import main
from blockmon.config.secrets import LINE_LIMIT, redact

SECRET = "Hunter2Secret9x"
EXAMPLES = DirectoryBasedExampleDatabase(str(Path(__file__).parent / ".hypothesis-examples"))
BUDGET = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    database=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ENV_VARS = ("DATABASE_URL", "REDIS_URL", "MIGRATIONS_DATABASE_URL", "BLOCKMON_LOG_LEVEL")

SECTIONS = {
    "postgres": ["url", "host", "port", "user", "password", "pool_size", "sslmode", "hosts"],
    "redis": ["url", "host", "port", "db", "password", "mode", "sentinels", "tls"],
    "monitoring": ["details", "details_token", "http_port", "check_timeout"],
    "migrations": ["url", "lock_wait"],
    "log": ["level", "format"],
    "tracing": ["enabled"],
}
SECRET_KEYS = {"password", "details_token"}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["${BM_VAR}", "${BM_VAR:}", "${BM_VAR:5}", "${NOPE}", "x" * 5000]),
)
ports = st.one_of(st.integers(min_value=-5, max_value=70000), st.sampled_from(["", "x", "5432"]))
query_keys = st.sampled_from(
    [
        *("sslmode", "host", "port", "password", "foo", "db", "target_session_attrs"),
        *("protocol", "", "options", "connect_timeout", "application_name", "dbname"),
    ]
)
query_values = st.one_of(
    st.sampled_from(["disable", "bogus", "1", "a:0", "", SECRET, "-c a=b", "-c", "--x=1 \\"]),
    st.text(),
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    """URLs with the secret as their password, in shapes right and wrong."""
    scheme = draw(
        st.sampled_from(
            [
                *("postgresql", "postgres", "postgresql+psycopg", "postgresql+foo"),
                *("redis", "rediss", "unix", "mysql", ""),
            ]
        )
    )
    host = draw(st.sampled_from(["db", "127.0.0.1", "[::1]", "", "h o", "ex%41mple"]))
    port = draw(ports)
    query = draw(st.lists(st.tuples(query_keys, query_values), max_size=3))
    text = f"{scheme}://u:{SECRET}@{host}" + (f":{port}" if port != "" else "") + "/0"
    if query:
        text += "?" + "&".join(f"{k}={v}" for k, v in query)
    return text


def settings_value(key: str) -> st.SearchStrategy[Any]:
    if key == "url":
        return urls()
    if key in SECRET_KEYS:
        return st.just(SECRET)
    return st.one_of(scalars, st.lists(scalars, max_size=3))


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A YAML text: a mostly well-formed tree of settings, sometimes mangled."""
    tree: dict[Any, Any] = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "other"]), max_size=4)):
        keys = SECTIONS.get(section, ["x"])
        body = draw(
            st.one_of(
                st.dictionaries(
                    st.sampled_from([*keys, "bogus_key"]),
                    st.deferred(lambda: settings_value("x")),
                    max_size=3,
                ).flatmap(
                    lambda d, keys=keys: st.fixed_dictionaries(
                        {k: settings_value(k) for k in d if k in keys}
                        | {k: st.just(v) for k, v in d.items() if k not in keys}
                    )
                ),
                urls(),
                scalars,
            )
        )
        tree[section] = body
    text = yaml.safe_dump(tree, default_flow_style=draw(st.booleans()))
    mangle = draw(st.sampled_from(["none", "cut", "insert", "dup", "alias", "deep", "loop"]))
    if mangle == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif mangle == "insert":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at] + draw(st.text(alphabet=":-[]{}&*!|>'\"#%@ \n\tab", max_size=8)) + text[at:]
        )
    elif mangle == "dup":
        text += text
    elif mangle == "alias":
        n = draw(st.integers(1, 30))
        text += "a0: &a0 [x]\n" + "".join(
            f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, n)
        )
    elif mangle == "loop":
        text += draw(
            st.sampled_from(["r: &r [*r]\n", "postgres: &p {x: [*p]}\n", "s: &s {a: *s}\n"])
        )
    elif mangle == "deep":
        depth = draw(st.integers(1, 3000))
        text += "d: " + "[" * depth + "]" * depth + "\n"
    return text


def _run(tmp: Path, text: str, env: dict[str, str]) -> tuple[int, str, str]:
    path = tmp / "config.yml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    clean = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "BLOCKMON_CONFIG"}
    with (
        mock.patch.dict(os.environ, {**clean, **env}, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(["config", "show", "-c", str(path)])
    return code, out.getvalue(), err.getvalue()


def _assert_contract(code: int, out: str, err: str) -> None:
    event(f"exit {code}: {err[17:].partition(':')[0][:30]}")  # --hypothesis-show-statistics
    assert SECRET not in out + err
    if code == 0:
        assert err.startswith("blockmon: config: ") and err.count("\n") == 1, err
        return
    assert code == 2, err
    assert out == ""
    assert err.startswith("blockmon: error: ") and err.endswith("\n") and err.count("\n") == 1
    assert len(err) <= LINE_LIMIT + len("blockmon: error: \n")
    assert "Traceback" not in err and "unexpected error" not in err


@BUDGET
@given(text=documents())
def test_any_document(text: str, tmp_path: Path) -> None:
    _assert_contract(*_run(tmp_path, text, {"BM_VAR": "7"}))


@BUDGET
@given(
    env=st.fixed_dictionaries(
        {},
        optional={
            "DATABASE_URL": urls(),
            "REDIS_URL": urls(),
            "MIGRATIONS_DATABASE_URL": urls(),
            "BLOCKMON_LOG_LEVEL": st.one_of(st.sampled_from(["DEBUG", "info", ""]), st.text()),
            "BM_VAR": st.text(),
        },
    ),
    text=st.sampled_from(
        ["{}\n", "postgres:\n  port: ${BM_VAR}\n", "redis:\n  url: ${BM_VAR:}\n", "log: {}\n"]
    ),
)
def test_any_environment(env: dict[str, str], text: str, tmp_path: Path) -> None:
    env = {k: v.replace("\x00", "") for k, v in env.items()}
    _assert_contract(*_run(tmp_path, text, env))


@BUDGET
@given(url=urls(), section=st.sampled_from(["postgres", "redis", "migrations"]))
def test_any_url(url: str, section: str, tmp_path: Path) -> None:
    text = yaml.safe_dump({section: {"url": url}})
    _assert_contract(*_run(tmp_path, text, {}))
    _assert_contract(*_run(tmp_path, yaml.safe_dump({section: url}), {}))


pieces = st.lists(
    # "Q7" first: a piece can never be a word of the error line itself ("percent-encode")
    st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789", min_size=4).map(
        lambda text: f"Q7{text}"
    ),
    min_size=2,
    max_size=4,
)


@BUDGET
@given(
    parts=pieces,
    section=st.sampled_from(["postgres", "redis", "migrations", "replicas"]),
)
def test_a_raw_at_in_a_password_is_refused_and_never_shown(
    parts: list[str], section: str, tmp_path: Path
) -> None:
    """``u:S3cret@TAIL@host``: exit 2 saying to write ``%40``, no piece of the password
    in the line, and the redaction net masks the user-info up to the last ``@``."""
    scheme = "redis" if section == "redis" else "postgresql"
    url = f"{scheme}://u:{'@'.join(parts)}@127.0.0.1:5432/0"
    tree = {"postgres": {"replicas": [url]}} if section == "replicas" else {section: {"url": url}}
    code, out, err = _run(tmp_path, yaml.safe_dump(tree), {})
    assert (code, out) == (2, "")
    assert "percent-encode it as %40" in err, err
    assert not [p for p in parts if p in err]
    assert not [p for p in parts if p in redact(f"failed: {url} (x)")]
