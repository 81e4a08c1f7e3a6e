"""PostgreSQL URLs as applications already write them: any driver suffix SQLAlchemy knows,
and libpq's query options read into what asyncpg takes (blockmon always uses asyncpg),
so a service's own ``DATABASE_URL`` works unchanged or is refused with one line."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import parse_qs, urlsplit

from blockmon.config.secrets import redact, shown

SSLMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
TargetSessionAttrs = Literal[
    "any", "primary", "standby", "prefer-standby", "read-write", "read-only"
]
# SQLAlchemy's PostgreSQL drivers: the URL an application gives its own engine names one
# of them; blockmon connects to the same server with asyncpg whichever it is.
DRIVERS = ("asyncpg", "psycopg", "psycopg2", "psycopg2cffi", "pg8000")
POSTGRES_SCHEMES = ("postgresql", "postgres", *(f"postgresql+{d}" for d in DRIVERS))
APPLICATION_NAME_MAX = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are cut
CONNECT_TIMEOUT_MAX = 600  # postgres.connect_timeout's bound


def scheme_shown(scheme: str) -> str:
    """A URL's scheme in an error: ``mysql://``, cut, or ``no scheme``."""
    return f"{redact(scheme[:40])}://" if scheme else "no scheme"


def scheme_problem(scheme: str) -> str | None:
    """Why ``scheme`` (lower case) names no PostgreSQL driver, or None."""
    if scheme in POSTGRES_SCHEMES:
        return None
    base, plus, _ = scheme.partition("+")
    if plus and base in ("postgresql", "postgres"):
        return (
            f"unknown PostgreSQL driver in {scheme_shown(scheme)} (accepted: "
            f"{', '.join(DRIVERS)}; blockmon connects with asyncpg whichever is named)"
        )
    return (
        "scheme must be postgresql:// or postgres://, with or without a driver "
        f"(postgresql+psycopg://...), got {scheme_shown(scheme)}"
    )


def hosts_in_query(url: str) -> str:
    """libpq's several hosts in the address (``//u@h1:5432,h2/db``) as the query's
    ``?host=h1:5432&host=h2:5432`` (a missing port is libpq's 5432), the form SQLAlchemy's
    asyncpg dialect reads; any other URL as it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # the URL check says what is wrong
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    listed = [h if h.rpartition("]")[2].count(":") else f"{h}:5432" for h in hosts.split(",")]
    query = "&".join([*(f"host={h}" for h in listed), *([parts.query] if parts.query else [])])
    return f"{parts.scheme}://{userinfo}{at}{parts.path}?{query}"


def _choice(*values: str) -> Callable[[str], bool]:
    return lambda value: value in values


def _host(value: str) -> bool:
    """``host``, ``host:port`` (port 1-65535), a comma-separated list of them, or a
    socket directory."""
    if value.startswith("/"):
        return True
    for one in value.split(","):
        try:
            parts = urlsplit(f"//{one}")
            if not parts.hostname or parts.port == 0:
                return False
        except ValueError:
            return False
    return True


def _ports(value: str) -> bool:
    """A port, or libpq's comma-separated list of them (one per host)."""
    return all(p.isdigit() and 1 <= int(p) <= 65535 for p in value.split(","))


def _seconds(value: str) -> bool:
    """libpq's ``connect_timeout``: seconds; 0 (wait forever) is refused, as blockmon
    never waits without a bound."""
    try:
        seconds = float(value)
    except ValueError:
        return False
    return 0 < seconds <= CONNECT_TIMEOUT_MAX


def switches(options: str) -> dict[str, str] | None:
    """libpq's ``options`` (``-c name=value``, ``-cname=value``, ``--name=value``;
    a backslash escapes a space) as server settings; None if it holds anything else."""
    tokens: list[str] = []
    current: list[str] = []
    escaped = False
    for char in options:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isspace():
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
    if escaped:
        return None
    if current:
        tokens.append("".join(current))
    found: dict[str, str] = {}
    rest = iter(tokens)
    for token in rest:
        if token == "-c":
            setting = next(rest, "")
        elif token.startswith(("-c", "--")):
            setting = token[2:]
        else:
            return None
        name, equals, value = setting.partition("=")
        if not equals or not name:
            return None
        found[name.replace("-", "_")] = value
    return found


# The query options asyncpg.connect() takes as keywords (SQLAlchemy passes the query on),
# and libpq's spelling of one of them.
_KEYWORDS: dict[str, Callable[[str], bool]] = {
    "host": _host,
    "port": _ports,
    "user": bool,
    "password": lambda v: True,
    "database": bool,
    "passfile": bool,
    "target_session_attrs": _choice(*get_args(TargetSessionAttrs)),
    "krbsrvname": bool,
    "gsslib": _choice("gssapi", "sspi"),
    "prepared_statement_cache_size": str.isdigit,  # SQLAlchemy's dialect's
}
_RENAMED = {"dbname": "database"}
# libpq's options that asyncpg takes under another form (`read_query`).
_TRANSLATED: dict[str, Callable[[str], bool]] = {
    "sslmode": _choice(*get_args(SSLMode)),
    "ssl": _choice(*get_args(SSLMode)),
    "connect_timeout": _seconds,
    "application_name": lambda v: len(v) <= APPLICATION_NAME_MAX,
    "options": lambda v: switches(v) is not None,
}
ACCEPTED = (*_KEYWORDS, *_RENAMED, *_TRANSLATED)


@dataclass(frozen=True)
class AsyncpgQuery:
    """A URL's query read for asyncpg: the keywords that stay in the URL, and what the
    other options become (``ssl``, ``timeout`` and ``server_settings`` of connect())."""

    keywords: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    ssl: str | None = None
    timeout: float | None = None
    server_settings: dict[str, str] = field(default_factory=dict)


def read_query(query: Mapping[str, str | Sequence[str]]) -> AsyncpgQuery:
    """``query`` (a URL's, values as parsed) for asyncpg; ValueError with one line (the
    option named, a password never shown) for an option it cannot take."""
    keywords: dict[str, str | tuple[str, ...]] = {}
    ssl: str | None = None
    timeout: float | None = None
    server_settings: dict[str, str] = {}
    for key, given in query.items():
        values = (given,) if isinstance(given, str) else tuple(given)
        check = _KEYWORDS.get(_RENAMED.get(key, key)) or _TRANSLATED.get(key)
        if check is None:
            raise ValueError(
                f"unknown query option {shown(key, 40)} (accepted: {', '.join(ACCEPTED)})"
            )
        bad = [v for v in values if not check(v)]
        if bad:
            got = "" if key == "password" else f", got {shown(bad[0], 40)}"
            raise ValueError(f"query option {key} has an invalid value{got}")
        last = values[-1] if values else ""
        if key in ("sslmode", "ssl"):
            ssl = last
        elif key == "connect_timeout":
            timeout = float(last)
        elif key == "application_name":
            server_settings["application_name"] = last
        elif key == "options":
            for value in values:
                server_settings.update(switches(value) or {})
        else:
            keywords[_RENAMED.get(key, key)] = values if len(values) > 1 else last
    return AsyncpgQuery(keywords, ssl, timeout, server_settings)


def query_problem(url: str) -> str | None:
    """What `read_query` would refuse in ``url``'s query, or None."""
    try:
        read_query(parse_qs(urlsplit(url).query, keep_blank_values=True))
    except ValueError as error:
        return str(error)
    return None
