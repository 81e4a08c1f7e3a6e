"""The validated shape of blockmon's configuration.

Every section forbids unknown keys and bounds every number, so a typo or an
out-of-range value stops start-up with one line instead of surfacing later as a hang.
Defaults are safe: every wait has a finite timeout.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from blockmon.config.deprecation import deprecated
from blockmon.config.postgres_url import (
    APPLICATION_NAME_MAX,
    CONNECT_TIMEOUT_MAX,
    SSLMode,
    TargetSessionAttrs,
    hosts_in_query,
    query_problem,
    scheme_problem,
    scheme_shown,
)
from blockmon.config.secrets import register_secrets, shown
from blockmon.errors import ConfigError

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
RedisMode = Literal["standalone", "sentinel", "cluster"]
# "host:port" (IPv6 as "[::1]:6379"); checked by parse_host_port.
HostPort = Annotated[str, Field(pattern=r"^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):[0-9]{1,5}$")]

# Below this, ordinary statements (a round trip plus the event loop's latency under
# load) would be reported as leaks: noise, and a stack captured on every checkout.
LEAK_THRESHOLD_MIN = 0.1
TOKEN_MIN = 16  # a bearer token a scanner cannot guess; spaces never survive a header
_TOKEN = re.compile(rf"\S{{{TOKEN_MIN},}}")
_SECRET_HINTS = ("password", "url", "dsn", "token")
_PROBLEMS = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "int_parsing_size": "must be an integer",
    "int_type": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "literal_error": "must be one of {expected}",
    "model_type": "must be a mapping of settings",
    "dict_type": "must be a mapping of settings",
    "missing": "is required",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "must be host:port",
    "list_type": "must be a list",
    "finite_number": "must be a finite number",
}


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        """``pool_size: true`` is a mistake, not 1: pydantic would take it as a number."""
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and field.annotation in (int, float):
            raise PydanticCustomError("bool_not_number", "must be a number")
        return value


class LogSettings(_Section):
    level: LogLevel = "info"
    format: Literal["auto", "json", "console"] = "auto"
    # False: only blockmon's loggers; the host's root logger and handlers stay its own.
    configure_root: bool = False


def _url_passwords(url: SecretStr | None) -> list[str]:
    """The passwords in the user-info part and in the query string (``?password=``)."""
    if url is None:
        return []
    try:
        parts = urlsplit(url.get_secret_value())
    except ValueError:
        return []
    query = parse_qs(parts.query)
    found = [v for k, vs in query.items() if k.lower() in ("password", "sslpassword") for v in vs]
    return [parts.password, *found] if parts.password else found


REDIS_SCHEMES = ("redis", "rediss", "unix")
REDIS_DB_MAX = 1023


def _check_url(
    url: SecretStr | None,
    scheme_problem: Callable[[str], str | None],
    problem: Callable[[str], str | None],
) -> SecretStr | None:
    """Reject a URL blockmon cannot use at load time, without echoing it (it may hold a
    password): what ``scheme_problem`` finds in its scheme (lower case), a raw ``@`` in
    the user-info, port, and what ``problem`` finds (the query options and path the
    driver would refuse or misread later)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url.get_secret_value())
    except ValueError:
        raise _url_error("not a valid URL") from None
    found = scheme_problem(parts.scheme.lower())
    if found is not None:
        raise _url_error(found)
    if parts.netloc.count("@") > 1:
        raise _url_error("the user name or password contains a raw '@': percent-encode it as %40")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _url_error("port must be a number between 1 and 65535")
    found = problem(url.get_secret_value())
    if found is not None:
        raise _url_error(found)
    return url


def _one_of(*schemes: str) -> Callable[[str], str | None]:
    """A scheme check that accepts ``schemes`` and names them when it refuses one."""
    names = [f"{s}://" for s in schemes]
    wanted = ", ".join(names[:-1]) + f" or {names[-1]}"

    def problem(scheme: str) -> str | None:
        got = scheme_shown(scheme)
        return None if scheme in schemes else f"scheme must be {wanted}, got {got}"

    return problem


def _url_error(problem: str) -> PydanticCustomError:
    return PydanticCustomError("blockmon_url", "{problem}", {"problem": problem})


def _check_postgres_url(url: SecretStr | None) -> SecretStr | None:
    """`_check_url` for a PostgreSQL URL (`blockmon.config.postgres_url`), its hosts
    checked where the engine reads them."""
    if url is None:
        return None
    _check_url(SecretStr(hosts_in_query(url.get_secret_value())), scheme_problem, query_problem)
    return url


# The numbers redis-py parses but would only refuse (or misuse) later: blockmon's own
# bounds for the same settings.
_REDIS_QUERY_RANGES: dict[str, tuple[Any, Any]] = {
    "db": (0, REDIS_DB_MAX),
    "protocol": (2, 3),
    "max_connections": (1, 100000),
    "socket_timeout": (1e-3, 3600),
    "socket_connect_timeout": (1e-3, 600),
    "timeout": (1e-3, 3600),
    "health_check_interval": (0, 86400),
}


def _redis_url_problem(url: str) -> str | None:
    """The database path redis-py would silently drop, then the query options, asking
    redis-py itself: its URL parser, then what its connection class accepts."""
    from redis.asyncio import connection

    parts = urlsplit(url)
    db = parts.path.lstrip("/") if parts.scheme.lower() != "unix" else ""
    if db and not (db.isdigit() and int(db) <= REDIS_DB_MAX):
        return f"database (the path) must be an integer between 0 and {REDIS_DB_MAX}"
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    for key, values in query.items():
        parsers = connection.URL_QUERY_ARGUMENT_PARSERS
        for value in values if key in parsers else ():
            try:
                parsed = parsers[key](value)
            except (TypeError, ValueError):
                parsed = None
            low, high = _REDIS_QUERY_RANGES.get(key, (None, None))
            if parsed is None or (low is not None and not low <= parsed <= high):
                return f"query option {key} has an invalid value, got {shown(value, 40)}"
    scheme = urlsplit(url).scheme.lower()
    kind = {"rediss": connection.SSLConnection, "unix": connection.UnixDomainSocketConnection}
    accepted = {"max_connections", "timeout"}  # the pool's
    for cls in (kind.get(scheme, connection.Connection), connection.AbstractConnection):
        accepted |= set(inspect.signature(cls).parameters) - {"kwargs"}
    for key in query:
        if key not in accepted:
            return f"unknown query option {shown(key, 40)} for {scheme}://"
    return None


def _command(command: str | None) -> str | None:
    """``password_command``: split like a shell line, its program found (it is run
    without a shell, for each new connection)."""
    if command is None:
        return None
    from blockmon.config.credentials import check_command

    try:
        return check_command(command)
    except ValueError as error:
        raise PydanticCustomError("password_command", str(error)) from None


def _provider(target: str | None) -> str | None:
    """``password_provider``: ``module:callable``, importable and callable now."""
    if target is None:
        return None
    from blockmon.config.credentials import load_provider

    try:
        load_provider(target)
    except ValueError as error:
        raise PydanticCustomError("password_provider", str(error)) from None
    return target


def _readable(path: str | None) -> str | None:
    """``password_file``: readable now (it is read again for each new connection)."""
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise PydanticCustomError("password_file", "must be a readable file")
    return path


def _one_password(section: str, settings: Any, url: SecretStr | None) -> None:
    """A password source (password_file / _command / _provider) is the only password:
    not two of them, nor one with ``password`` or a URL's password (the URL winning over
    ``password`` stays as it was)."""
    given = [
        name
        for name in ("password_file", "password_command", "password_provider")
        if getattr(settings, name) is not None
    ]
    if not given:
        return
    if settings.password is not None and settings.password.get_secret_value():
        given.insert(0, "password")
    if _url_passwords(url):
        given.insert(0, "url (its password)")
    if len(given) > 1:
        raise ValueError(
            f"{section}.{given[-1]}: cannot be combined with {section}.{given[0]} (choose one)"
        )


def _replica(entry: SecretStr) -> SecretStr:
    """A ``postgres.replicas`` entry given as a URL gets the checks of ``postgres.url``."""
    if "://" in entry.get_secret_value():
        _check_postgres_url(entry)
    return entry


class PostgresSettings(_Section):
    enabled: bool = True  # false: a Redis-only service (no engine, no check, no metrics)
    url: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "postgres"
    password: SecretStr | None = None
    # Rotating credentials (docs/core.md): one of these instead of ``password``, asked
    # again for each new connection; the command is run without a shell, bounded.
    password_file: Annotated[str | None, AfterValidator(_readable)] = Field(None, min_length=1)
    password_command: Annotated[str | None, AfterValidator(_command)] = Field(None, min_length=1)
    password_command_timeout: float = Field(10.0, gt=0, le=600)
    password_provider: Annotated[str | None, AfterValidator(_provider)] = Field(None, min_length=1)
    database: str = Field("blockmon", min_length=1)
    sslmode: SSLMode = "prefer"
    application_name: str = Field("blockmon", max_length=APPLICATION_NAME_MAX)
    pool_size: int = Field(10, ge=1, le=1000)
    max_overflow: int = Field(10, ge=0, le=1000)
    pool_timeout: float = Field(10.0, gt=0, le=3600)
    max_lifetime: float = Field(1800.0, gt=0)
    # Connections opened at start-up and kept open (HikariCP's minimumIdle); <= pool_size.
    min_idle: int = Field(0, ge=0, le=1000)
    connect_timeout: float = Field(5.0, gt=0, le=CONNECT_TIMEOUT_MAX)
    statement_timeout: float = Field(30.0, gt=0, le=86400)
    command_timeout: float = Field(35.0, gt=0, le=86400)
    close_timeout: float = Field(2.0, gt=0, le=600)
    # Seconds the engine's shutdown waits for the statements, units of work and sessions
    # in flight before it closes the pool (blockmon.postgres.shutdown).
    shutdown_timeout: float = Field(10.0, ge=0, le=3600)
    validation: Literal["bypass", "pre_ping", "none"] = "bypass"
    validation_window: float = Field(0.5, ge=0, le=3600)
    # Seconds a connection may stay checked out before it is reported as a possible leak
    # (HikariCP's leakDetectionThreshold); 0: off. blockmon.postgres.leaks says why 0.1.
    leak_detection_threshold: float = Field(0.0, ge=0, le=86400)
    echo: bool = False
    # Scale-out (docs/topologies.md): several hosts tried in order, read replicas, PgBouncer.
    hosts: list[HostPort] = []
    target_session_attrs: TargetSessionAttrs | None = None
    replicas: list[Annotated[SecretStr, AfterValidator(_replica)]] = []
    replica_fallback: bool = True
    replica_retry_after: float = Field(5.0, gt=0, le=3600)
    replica_lag_warn: float = Field(10.0, gt=0, le=86400)
    pgbouncer: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, url: SecretStr | None) -> SecretStr | None:
        return _check_postgres_url(url)

    @field_validator("leak_detection_threshold")
    @classmethod
    def _leak_threshold(cls, seconds: float) -> float:
        if 0 < seconds < LEAK_THRESHOLD_MIN:
            raise PydanticCustomError(
                "leak_threshold", f"must be 0 (off) or >= {LEAK_THRESHOLD_MIN}"
            )
        return seconds

    @model_validator(mode="before")
    @classmethod
    def _database_from_url(cls, data: Any) -> Any:
        """The database a URL names is the one used: ``database`` says so too, so that
        ``config show`` and ``up`` never name another one."""
        if not isinstance(data, dict) or data.get("url") is None:
            return data
        url = data["url"]
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        try:
            parts = urlsplit(raw) if isinstance(raw, str) else None
        except ValueError:
            return data  # the url check says what is wrong
        if parts is None:
            return data
        query = parse_qs(parts.query)
        given = query.get("database") or query.get("dbname")  # libpq's: the query wins
        name = given[-1] if given else unquote(parts.path.lstrip("/"))
        return {**data, "database": name} if name else data

    @model_validator(mode="after")
    def _min_idle_in_pool(self) -> PostgresSettings:
        if self.min_idle > self.pool_size:
            raise ValueError(
                f"postgres.min_idle: must be <= postgres.pool_size ({self.pool_size}), "
                f"got {self.min_idle}"
            )
        return self

    @model_validator(mode="after")
    def _one_password(self) -> PostgresSettings:
        _one_password("postgres", self, self.url)
        return self

    @model_validator(mode="after")
    def _remember_secrets(self) -> PostgresSettings:
        register_secrets(
            [
                self.password.get_secret_value() if self.password else None,
                *_url_passwords(self.url),
                *(p for r in self.replicas for p in _url_passwords(r)),
            ]
        )
        return self

    @property
    def autocommit_safe(self) -> bool:
        """Deprecated: ``not pgbouncer``."""
        deprecated("PostgresSettings.autocommit_safe", "not PostgresSettings.pgbouncer")
        return not self.pgbouncer


class RedisSettings(_Section):
    enabled: bool = True  # false: a PostgreSQL-only service (no client, no check, no metrics)
    url: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0, le=REDIS_DB_MAX)
    username: str | None = None
    password: SecretStr | None = None
    # Rotating credentials (docs/core.md): one of these instead of ``password``, asked
    # again for each new connection; the command is run without a shell, bounded.
    password_file: Annotated[str | None, AfterValidator(_readable)] = Field(None, min_length=1)
    password_command: Annotated[str | None, AfterValidator(_command)] = Field(None, min_length=1)
    password_command_timeout: float = Field(10.0, gt=0, le=600)
    password_provider: Annotated[str | None, AfterValidator(_provider)] = Field(None, min_length=1)
    tls: bool = False
    client_name: str = "blockmon"
    max_connections: int = Field(50, ge=1, le=100000)
    pool_timeout: float = Field(5.0, gt=0, le=3600)
    socket_timeout: float = Field(5.0, gt=0, le=3600)
    socket_connect_timeout: float = Field(5.0, gt=0, le=600)
    retries: int = Field(3, ge=0, le=100)
    retry_backoff_base: float = Field(0.05, gt=0, le=60)
    retry_backoff_cap: float = Field(1.0, gt=0, le=600)
    health_check_interval: float = Field(30.0, ge=0, le=86400)
    # Seconds the client's shutdown waits for the commands in flight before it closes the
    # pool (blockmon.redis.shutdown).
    shutdown_timeout: float = Field(10.0, ge=0, le=3600)
    key_prefix: str = "blockmon:"
    # Topology (docs/topologies.md): one server, a Sentinel-managed master, or a cluster.
    mode: RedisMode = "standalone"
    sentinels: list[HostPort] = []
    service_name: str | None = Field(None, min_length=1)
    sentinel_username: str | None = None
    sentinel_password: SecretStr | None = None
    cluster_nodes: list[HostPort] = []

    @field_validator("url")
    @classmethod
    def _url(cls, url: SecretStr | None) -> SecretStr | None:
        return _check_url(url, _one_of(*REDIS_SCHEMES), _redis_url_problem)

    @model_validator(mode="after")
    def _one_password(self) -> RedisSettings:
        _one_password("redis", self, self.url)
        for name in ("password_file", "password_command", "password_provider"):
            if self.mode != "standalone" and getattr(self, name) is not None:
                raise ValueError(
                    f"redis.{name}: applies to mode standalone only (mode is {self.mode})"
                )
        return self

    @model_validator(mode="after")
    def _remember_secrets(self) -> RedisSettings:
        register_secrets(
            [
                self.password.get_secret_value() if self.password else None,
                self.sentinel_password.get_secret_value() if self.sentinel_password else None,
                *_url_passwords(self.url),
            ]
        )
        return self

    @model_validator(mode="after")
    def _topology_complete(self) -> RedisSettings:
        if self.mode != "standalone" and self.url is not None:
            raise ValueError(
                f"redis.url: applies to mode standalone only (mode is {self.mode}; "
                "use redis.sentinels or redis.cluster_nodes, and unset REDIS_URL)"
            )
        if self.mode == "sentinel":
            if not self.sentinels:
                raise ValueError("redis.sentinels: is required when redis.mode is sentinel")
            if self.service_name is None:
                raise ValueError("redis.service_name: is required when redis.mode is sentinel")
        if self.mode == "cluster" and self.db != 0:
            raise ValueError(f"redis.db: must be 0 when redis.mode is cluster, got {self.db}")
        return self


# A health group's name (``/health/<group>``) and a check's name (checker's rule).
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
CHECK_NAME = re.compile(r"^[a-z][a-z0-9_.\-]{0,62}(:[a-zA-Z][a-zA-Z0-9_]{0,62})?$")


class CheckSettings(_Section):
    """``monitoring.checks.<name>``: one check's thresholds, over the section's."""

    failure_threshold: int | None = Field(None, ge=1, le=1000)
    success_threshold: int | None = Field(None, ge=1, le=1000)


def _check_names(checks: dict[str, Any]) -> dict[str, Any]:
    for name in checks:
        if not CHECK_NAME.match(name):
            raise PydanticCustomError("check_name", f"{name!r} is not a check name")
    return checks


def _groups(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    for group, members in groups.items():
        if not GROUP_NAME.match(group):
            raise PydanticCustomError("group_name", f"{group!r} is not a group name")
        _check_names(dict.fromkeys(members))
    return groups


class MonitoringSettings(_Section):
    health_interval: float = Field(30.0, gt=0, le=86400)
    check_timeout: float = Field(5.0, gt=0, le=600)
    cache_ttl: float = Field(1.0, ge=0, le=3600)
    postgres_critical: bool = True
    redis_critical: bool = True
    replicas_critical: bool = False  # read-replica checks (docs/topologies.md)
    pool_saturation_warn: float = Field(0.9, gt=0, le=1)
    slow_response_warn: float = Field(1.0, gt=0, le=600)
    # A check turns to fail after this many failed runs in a row, and back after this
    # many runs that did not fail (alexliesenfeld/health); per check in ``checks``.
    failure_threshold: int = Field(1, ge=1, le=1000)
    success_threshold: int = Field(1, ge=1, le=1000)
    checks: Annotated[dict[str, CheckSettings], AfterValidator(_check_names)] = {}
    # Named groups of checks served at /health/<group>; ``readiness`` (default: the
    # critical checks) and ``liveness`` (default: none) are groups too.
    groups: Annotated[dict[str, list[str]], AfterValidator(_groups)] = {}
    # Threads that run synchronous checks (a hung check holds at most one).
    check_threads: int = Field(4, ge=1, le=256)
    slow_query_threshold: float = Field(1.0, ge=0, le=86400)
    http_host: str = Field("127.0.0.1", min_length=1)
    http_port: int = Field(9464, ge=1, le=65535)
    # The monitoring server's own defence (docs/monitoring.md): connections open at once
    # (the longest idle closed first beyond it), seconds to send a request head, seconds
    # an idle keep-alive connection stays open.
    http_max_connections: int = Field(1000, ge=8, le=1_000_000)
    http_header_timeout: float = Field(10.0, gt=0, le=600)
    http_keepalive_timeout: int = Field(5, ge=1, le=3600)
    details: Literal["never", "always", "token"] = "never"
    details_token: SecretStr | None = Field(None, validate_default=True)
    use_global_registry: bool = False
    # Multi-process metrics (docs/deployment.md): the directory prometheus_client's
    # multiprocess mode writes to; every worker's /metrics then shows the sum of all.
    multiprocess_dir: str | None = Field(None, min_length=1)
    # Shutdown and probes (docs/deployment.md): on SIGTERM /readyz fails at once, ``blockmon
    # serve`` / ``up --serve`` keep serving shutdown_delay seconds (for load balancers to
    # notice), then stop accepting and wait up to shutdown_timeout seconds for requests in
    # flight; /readyz fails until the schema was once seen at head when asked.
    shutdown_delay: float = Field(0.0, ge=0, le=3600)
    shutdown_timeout: int = Field(20, ge=1, le=3600)
    ready_requires_schema_head: bool = False

    @field_validator("multiprocess_dir")
    @classmethod
    def _multiprocess_dir(cls, path: str | None) -> str | None:
        if path is not None and not (os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)):
            raise PydanticCustomError("multiprocess_dir", "must be a writable directory")
        return path

    @field_validator("details_token")
    @classmethod
    def _token_when_needed(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("details") == "token" and not (token and token.get_secret_value()):
            raise PydanticCustomError("token_required", "is required when details is 'token'")
        if token is not None and not _TOKEN.fullmatch(token.get_secret_value()):
            raise PydanticCustomError(
                "token_weak", f"must be at least {TOKEN_MIN} characters, without spaces"
            )
        if token is not None:
            register_secrets([token.get_secret_value()])
        return token


class MigrationSettings(_Section):
    """``url``: a separate DSN for migrations (straight to PostgreSQL when the application
    goes through PgBouncer); ``lock_wait``: how long an upgrade waits for another one to
    finish; ``lock_timeout``: how long DDL may wait for a table lock; ``lock_retries``
    and ``lock_retry_backoff``: how often and after how long (doubling) a revision that
    hit lock_timeout runs again; ``statement_timeout``: the migrations' own (0: none);
    ``alerting_tables``: blockmon's bundled alerting schema (opt-in: the host's database
    is the host's); ``heads_from``: the application's alembic.ini."""

    url: SecretStr | None = None
    lock_wait: float = Field(60.0, gt=0, le=86400)
    lock_timeout: float = Field(5.0, gt=0, le=3600)
    lock_retries: int = Field(3, ge=0, le=100)
    lock_retry_backoff: float = Field(1.0, gt=0, le=600)
    statement_timeout: float = Field(0.0, ge=0, le=86400)
    # users, alert_rules, alerts (the Go design's schema) in blockmon_alembic_version.
    alerting_tables: bool = False
    # The application's chain: what `blockmon db`/`up` migrate and health compares.
    heads_from: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: SecretStr | None) -> SecretStr | None:
        return _check_postgres_url(url)

    @field_validator("heads_from")
    @classmethod
    def _heads_from(cls, path: str | None) -> str | None:
        if not path:
            return None
        from blockmon.config.alembic_ini import read_chain

        try:
            read_chain(path)
        except ValueError as error:
            raise PydanticCustomError("alembic_ini", str(error)) from None
        return path

    @model_validator(mode="after")
    def _remember_secrets(self) -> MigrationSettings:
        register_secrets(_url_passwords(self.url))
        return self


# What ``tracing.enabled`` needs: the instrumentations the ``otel`` extra installs.
OTEL_MODULES = (
    "opentelemetry.instrumentation.asyncpg",
    "opentelemetry.instrumentation.redis",
)


class TracingSettings(_Section):
    """``enabled``: OpenTelemetry spans for SQL statements, Redis commands and health
    checks (docs/monitoring.md), sent to the host's tracer provider."""

    enabled: bool = False

    @field_validator("enabled")
    @classmethod
    def _extra_installed(cls, enabled: bool) -> bool:
        """Refuse at load, not at the first span, when the ``otel`` extra is missing."""
        if enabled:
            try:
                for module in OTEL_MODULES:
                    importlib.import_module(module)
            except ImportError:
                raise ValueError(
                    'tracing.enabled: needs the otel extra: pip install "blockmon[otel]"'
                ) from None
        return enabled


class Settings(_Section):
    log: LogSettings = LogSettings()
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    migrations: MigrationSettings = MigrationSettings()
    tracing: TracingSettings = TracingSettings()


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Mapping[str, Any] | None, prefix: str = "") -> M:
    """Validate ``data`` as ``model``; on failure raise one ConfigError naming the setting."""
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise ConfigError(describe(exc, model, data or {}, prefix)) from None


def describe(
    exc: ValidationError, model: type[BaseModel], data: Mapping[str, Any], prefix: str = ""
) -> str:
    """Turn pydantic's first error into ``section.key: problem, got value``; the value
    goes through `shown` (redacted, cut), never for a secret-looking setting."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    path = ".".join(([prefix] if prefix else []) + [shown(p, 40).strip("'") for p in loc])
    path = path or "the configuration"
    kind = err["type"]
    ctx = {k: _plain(v) for k, v in err.get("ctx", {}).items()}
    value = _lookup(data, loc)
    secret = any(h in part.lower() for part in loc for h in _SECRET_HINTS)
    shown_value = "" if secret or value is _MISSING else f", got {shown(value)}"
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(loc[-1], _known_keys(model, loc[:-1]), n=1)
        return f"{path}: unknown setting" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])  # our own validators name the setting themselves
    if kind in ("model_type", "dict_type") and isinstance(value, str) and "://" in value:
        return f"{path}: must be a mapping of settings, got a URL (write it as {path}.url)"
    template = _PROBLEMS.get(kind)
    msg = str(err["msg"])
    problem = template.format(**ctx) if template else msg[:1].lower() + msg[1:]
    return f"{path}: {problem}{shown_value}"


def _plain(value: Any) -> Any:
    """``0`` rather than ``0.0`` in a bound: the file says ``connect_timeout: 0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_MISSING = object()


def _lookup(data: Any, loc: list[str]) -> Any:
    for part in loc:
        if not isinstance(data, Mapping) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _known_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        if not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)
