"""Tracing (``tracing.enabled``, the otel extra): a request of the example service is one
trace, HTTP span at the root, SQL and Redis spans beneath it; the `Statements` path and
health checks have spans too; no parameter and no password reaches a span; log events
carry the active span's ids; without the extra the setting stops with one line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from blockmon import ApplicationContainer, Lifespan
from blockmon.config.log import get_logger
from blockmon.config.settings import PostgresSettings, Settings
from blockmon.testing import migrate
from blockmon.testing.servers import RedisServer
from tests.support import captured_logs, eventually, unique
from tests.test_migrations_cli import BIN, ROOT, TIMEOUT, dsn, environ

EXAMPLE = ROOT / "examples" / "fastapi_service"
PASSWORD = "Tr4ce-s3cret-5e1f"  # the trust-auth PostgreSQL ignores it; a Redis ACL user has it


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set once: OpenTelemetry allows no second one),
    exporting to memory; emptied before each use."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.clear()


@pytest.fixture
def example_service() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield
    finally:
        sys.path.remove(str(EXAMPLE))
        for name in [m for m in sys.modules if m.split(".")[0] == "fastapi_service"]:
            del sys.modules[name]


def traced(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "tracing": {"enabled": True}}


@pytest_asyncio.fixture
async def service(
    spans: InMemorySpanExporter,
    blockmon_fresh_database: PostgresSettings,
    blockmon_config: dict[str, Any],
    example_service: None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The example service, traced, on a database migrated with both chains; its HTTP
    spans from the FastAPI instrumentation, as a user adds it."""
    from fastapi_service.application import create_app
    from fastapi_service.containers import Container

    config = traced({**blockmon_config, "postgres": blockmon_fresh_database.model_dump()})
    config["migrations"] = {**config["migrations"], "heads_from": str(EXAMPLE / "alembic.ini")}
    await migrate(Settings.model_validate(config))
    container = Container()
    container.config.blockmon.from_dict(config)
    app = create_app(container)
    FastAPIInstrumentor.instrument_app(app)
    async with Lifespan(container):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def one_trace(spans: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The root (the HTTP server span) and every span, asserting they are one trace in
    which every span's parent is in it."""
    finished = list(spans.get_finished_spans())
    assert len({s.context.trace_id for s in finished}) == 1, [s.name for s in finished]
    ids = {s.context.span_id for s in finished}
    roots = [s for s in finished if s.parent is None]
    assert len(roots) == 1 and roots[0].kind == SpanKind.SERVER, [s.name for s in roots]
    assert all(s.parent.span_id in ids for s in finished if s.parent is not None)
    return roots[0], finished


def parent_of(span: ReadableSpan, finished: list[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None
    return next(s for s in finished if s.context.span_id == span.parent.span_id)


def ancestors(span: ReadableSpan, finished: list[ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None:
        span = parent_of(span, finished)
        names.append(span.name)
    return names


def db_spans(finished: list[ReadableSpan], system: str) -> list[ReadableSpan]:
    return [s for s in finished if (s.attributes or {}).get("db.system") == system]


def everything_in(finished: list[ReadableSpan]) -> str:
    """Names, attributes, events and status of every span, as one string to search."""
    return json.dumps(
        [
            [s.name, dict(s.attributes or {}), s.status.description]
            + [[e.name, dict(e.attributes or {})] for e in s.events]
            for s in finished
        ],
        default=str,
    )


async def test_a_request_of_the_example_service_is_one_trace(
    service: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    created = await service.post("/users")
    assert created.status_code == 201
    user = created.json()
    root, finished = one_trace(spans)
    assert root.name == "POST /users"
    insert = [s for s in db_spans(finished, "postgresql") if s.name == "INSERT"]
    assert len(insert) == 1
    statement = str((insert[0].attributes or {})["db.statement"])
    assert statement.startswith("INSERT INTO accounts (email) VALUES ($1::VARCHAR)")
    assert user["email"] not in everything_in(finished)  # the parameter, nowhere

    spans.clear()
    read = await service.get(f"/users/{user['id']}")  # a cache miss: GET, SELECT, SET
    assert read.json() == user
    root, finished = one_trace(spans)
    assert root.name == "GET /users/{user_id}"
    sql = db_spans(finished, "postgresql")
    assert [s.name for s in sql] == ["BEGIN;", "SELECT", "ROLLBACK;"]  # asyncpg names them so
    select = str((sql[1].attributes or {})["db.statement"])
    assert "WHERE accounts.id = $1::INTEGER" in select
    commands = db_spans(finished, "redis")
    assert [(s.name, (s.attributes or {})["db.statement"]) for s in commands] == [
        ("GET", "GET ?"),
        ("SET", "SET ? ? ? ?"),  # every argument a "?", the option names too
    ]
    others = {s.name for s in finished if s is not root and s not in sql + commands}
    assert others == {"GET /users/{user_id} http send"}, others
    in_order = sorted(sql + commands, key=lambda s: s.start_time or 0)
    assert [s.name for s in in_order] == ["GET", "BEGIN;", "SELECT", "ROLLBACK;", "SET"]
    assert (commands[0].attributes or {})["db.redis.database_index"] == 0
    for span in sql + commands:
        assert span.kind == SpanKind.CLIENT
        attributes = span.attributes or {}
        # a port over TCP; an embedded server's Unix socket has a path only
        tcp = attributes.get("net.transport") == "ip_tcp"
        assert ({"net.peer.name", "net.peer.port"} if tcp else {"net.peer.name"}) <= set(
            attributes
        ), attributes
        assert parent_of(span, finished) is root  # the endpoint's own calls, not nested deeper
    assert user["email"] not in everything_in(finished)


async def test_a_requests_trace_is_the_exemplar_of_its_latency_buckets(
    service: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    """#25's exemplars the way a user gets them: a request of the example service (its
    HTTP span from the FastAPI instrumentation), then a scrape of its /metrics with the
    OpenMetrics content type: the statement's and the commands' buckets carry the
    request's trace id."""
    user = (await service.post("/users")).json()
    spans.clear()
    assert (await service.get(f"/users/{user['id']}")).status_code == 200  # SELECT, GET, SET
    root, _ = one_trace(spans)
    trace_id = f"{root.context.trace_id:032x}"
    scraped = await service.get(
        "/monitoring/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
    )
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    for family in ("postgres_query_duration_seconds", "redis_command_duration_seconds"):
        found = [
            line
            for line in scraped.text.splitlines()
            if line.startswith(f"{family}_bucket") and f'trace_id="{trace_id}"' in line
        ]
        assert found, family
    plain = await service.get("/monitoring/metrics")
    assert trace_id not in plain.text


async def test_health_checks_are_spans_of_the_probe_request(
    service: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    assert (await service.get("/monitoring/health")).status_code == 200
    root, finished = one_trace(spans)
    checks = {s.name: s for s in finished if s.name.startswith("health ")}
    # the service's own check (its Resource, started by the Lifespan) is one of them
    names = {"postgres", "postgres:schema", "redis", "accounts"}
    assert set(checks) == {f"health {name}" for name in names}
    assert all(parent_of(s, finished) is root for s in checks.values())
    assert {(s.attributes or {})["blockmon.health.check"] for s in checks.values()} == names
    ping = [
        s for s in db_spans(finished, "postgresql") if "health postgres" in ancestors(s, finished)
    ]
    assert ping, [s.name for s in finished]


async def test_periodic_checks_are_traces_of_their_own(
    spans: InMemorySpanExporter, blockmon_config: dict[str, Any]
) -> None:
    config = traced(blockmon_config)
    config["monitoring"] = {**config.get("monitoring", {}), "health_interval": 0.2}
    container = ApplicationContainer()
    container.config.from_dict(config)
    spans.clear()

    async def a_root_check_span() -> bool:
        return any(
            s.name == "health postgres" and s.parent is None for s in spans.get_finished_spans()
        )

    async with Lifespan(container):
        assert await eventually(a_root_check_span)


async def test_statements_path_is_traced_without_its_parameters(
    spans: InMemorySpanExporter, blockmon_config: dict[str, Any]
) -> None:
    container = ApplicationContainer()
    container.config.from_dict(traced(blockmon_config))
    async with Lifespan(container):
        db = await container.postgres.statements()
        assert await db.scalar("SELECT 1") == 1  # the connection's set-up queries, before
        spans.clear()
        with trace.get_tracer("test").start_as_current_span("work") as work:
            assert await db.scalar("SELECT CAST(:x AS int) + 1", {"x": 41_4243}) == 41_4244
    (span,) = db_spans(list(spans.get_finished_spans()), "postgresql")
    attributes = span.attributes or {}
    assert (span.name, attributes["db.statement"]) == ("SELECT", "SELECT CAST($1 AS int) + 1")
    assert attributes["db.name"] == blockmon_config["postgres"]["database"]
    assert attributes["db.user"] == blockmon_config["postgres"]["user"]
    assert span.parent is not None and span.parent.span_id == work.get_span_context().span_id
    assert "414243" not in everything_in(list(spans.get_finished_spans()))


@pytest.fixture
def redis_user(redis_server: RedisServer) -> Iterator[str]:
    """A Redis ACL user of its own, with PASSWORD, on a throwaway server (host:port, also
    where the per-run Redis is an embedded server's socket)."""
    name = unique("blockmon-trace")
    admin = redis_server.client()
    try:
        admin.acl_setuser(
            name, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], commands=["+@all"]
        )
        yield name
    finally:
        admin.acl_deluser(name)
        admin.close()


async def test_no_password_reaches_a_span(
    spans: InMemorySpanExporter,
    blockmon_config: dict[str, Any],
    redis_user: str,
    redis_server: RedisServer,
) -> None:
    config = traced(blockmon_config)
    config["postgres"] = {
        **config["postgres"],
        "url": dsn(PostgresSettings.model_validate(config["postgres"]), password=PASSWORD),
    }
    config["redis"] = {
        **config["redis"],
        "url": f"redis://{redis_user}:{PASSWORD}@{redis_server.address}/0",
    }
    container = ApplicationContainer()
    container.config.from_dict(config)
    spans.clear()
    async with Lifespan(container):
        with trace.get_tracer("test").start_as_current_span("work"):
            db = await container.postgres.statements()
            assert await db.scalar("SELECT 1") == 1
            engine = await container.postgres.engine()
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 2")
            cache = await container.redis.cache()
            await cache.set_many({"k": "v", "j": "w"}, ttl=5)
            assert await cache.get_many(["k", "j"]) == {"k": b"v", "j": b"w"}
            checker = await container.monitoring.health()

            async def leaky() -> None:
                raise RuntimeError(f"cannot reach postgresql://app:{PASSWORD}@db.internal/app")

            checker.register("leaky", leaky, critical=False)
            await checker.report(max_age=0)
    finished = list(spans.get_finished_spans())
    pipelines = [
        (
            s.name,
            (s.attributes or {})["db.statement"],
            (s.attributes or {})["db.redis.pipeline_length"],
        )
        for s in db_spans(finished, "redis")
        if "db.redis.pipeline_length" in (s.attributes or {})
    ]
    assert pipelines == [("SET SET", "SET ? ? ? ?\nSET ? ? ? ?", 2), ("GET GET", "GET ?\nGET ?", 2)]
    assert db_spans(finished, "postgresql")
    (leaky,) = [s for s in finished if s.name == "health leaky"]
    assert leaky.status.status_code == StatusCode.ERROR
    assert (
        leaky.status.description
        == "RuntimeError: cannot reach postgresql://app:***@db.internal/app"
    )
    text = everything_in(finished)
    assert PASSWORD not in text and PASSWORD.lower() not in text.lower()


async def test_rotated_passwords_reach_no_span(
    spans: InMemorySpanExporter,
    blockmon_config: dict[str, Any],
    redis_user: str,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Rotating credentials (#25): the PostgreSQL password from a file and a Redis ACL
    user's password from a command; the ACL password rotates (the file with it) and the
    connections Redis dropped come back with the new one; neither secret is in a span."""
    rotated = f"R0tated-{unique('pw')}"
    pg_file, redis_file = tmp_path / "pg-password", tmp_path / "redis-password"
    pg_file.write_text(PASSWORD + "\n")
    redis_file.write_text(PASSWORD + "\n")
    config = traced(blockmon_config)
    config["postgres"] = {**config["postgres"], "password": "", "password_file": str(pg_file)}
    config["redis"] = {
        **config["redis"],
        **redis_server.settings(),
        "username": redis_user,
        "password": "",
        "password_command": f"cat {redis_file}",
        "client_name": unique("rotating"),
    }
    container = ApplicationContainer()
    container.config.from_dict(config)
    admin = redis_server.client()
    spans.clear()
    try:
        async with Lifespan(container):
            with trace.get_tracer("test").start_as_current_span("work"):
                engine = await container.postgres.engine()
                async with engine.connect() as conn:
                    assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
                cache = await container.redis.cache()
                await cache.set("rotating", "before", ttl=5)
                # The store and the server rotate; Redis drops the user's connections.
                redis_file.write_text(rotated + "\n")
                admin.acl_setuser(
                    redis_user, enabled=True, reset_passwords=True, passwords=[f"+{rotated}"]
                )
                received = int(admin.info("stats")["total_connections_received"])
                assert admin.client_kill_filter(user=redis_user) >= 1
                await cache.set("rotating", "after", ttl=5)
                assert await cache.get("rotating") == b"after"
            ours = [
                c for c in admin.client_list() if c.get("name") == config["redis"]["client_name"]
            ]
            reconnected = int(admin.info("stats")["total_connections_received"]) - received
    finally:
        admin.close()
    # New connections, as the ACL user (the old password opens none any more).
    assert reconnected >= 1 and ours and {c["user"] for c in ours} == {redis_user}
    finished = list(spans.get_finished_spans())
    assert db_spans(finished, "postgresql") and db_spans(finished, "redis")
    text = everything_in(finished)
    for secret in (PASSWORD, rotated):
        assert secret not in text and secret.lower() not in text.lower()


async def test_log_events_carry_the_active_spans_ids(
    spans: InMemorySpanExporter, blockmon_config: dict[str, Any]
) -> None:
    log = get_logger("blockmon.test")
    container = ApplicationContainer()
    container.config.from_dict(traced(blockmon_config))
    with captured_logs("info") as stream:
        async with Lifespan(container):
            log.info("outside")
            with trace.get_tracer("test").start_as_current_span("work") as work:
                log.info("inside")
                logging.getLogger("a.library").warning("a library, inside")
        log.info("after shutdown")
        with trace.get_tracer("test").start_as_current_span("untraced"):
            log.info("tracing off")
    events = {e["event"]: e for e in map(json.loads, stream.getvalue().splitlines())}
    context = work.get_span_context()
    assert events["inside"]["trace_id"] == f"{context.trace_id:032x}"
    assert events["inside"]["span_id"] == f"{context.span_id:016x}"
    assert events["a library, inside"]["trace_id"] == f"{context.trace_id:032x}"
    for name in ("outside", "after shutdown", "tracing off"):
        assert "trace_id" not in events[name] and "span_id" not in events[name]


async def test_shutdown_leaves_asyncpg_as_found(blockmon_config: dict[str, Any]) -> None:
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    first, second = ApplicationContainer(), ApplicationContainer()
    for container in (first, second):
        container.config.from_dict(traced(blockmon_config))
    async with Lifespan(first):
        async with Lifespan(second):
            assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
        assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]


def blockmon_cli(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "blockmon"), "config", "show", "-c", str(config)],
        env=environ(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_without_the_extra_the_setting_is_one_line(tmp_path: Path) -> None:
    """``opentelemetry`` made unimportable, as in an environment without the extra."""
    blocker = tmp_path / "blocker" / "opentelemetry"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    config = tmp_path / "config.yml"
    config.write_text("tracing:\n  enabled: true\n")
    done = blockmon_cli(config, PYTHONPATH=str(blocker.parent))
    assert done.returncode == 2
    assert done.stdout == ""
    assert (
        done.stderr
        == 'blockmon: error: tracing.enabled: needs the otel extra: pip install "blockmon[otel]"\n'
    )
    config.write_text("tracing:\n  enabled: false\n")  # off: the extra is not needed
    assert blockmon_cli(config, PYTHONPATH=str(blocker.parent)).returncode == 0


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("tracing:\n  enabled: maybe\n", "tracing.enabled: must be true or false, got 'maybe'"),
        ("tracing:\n  enable: true\n", "tracing.enable: unknown setting (did you mean 'enabled'?)"),
        ("tracing: true\n", "tracing: must be a mapping of settings, got True"),
    ],
)
def test_bad_tracing_settings_are_one_line(tmp_path: Path, content: str, line: str) -> None:
    config = tmp_path / "config.yml"
    config.write_text(content)
    done = blockmon_cli(config)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"blockmon: error: {line}\n")


async def test_instrumentations_the_host_turned_on_stay_on_and_single(
    spans: InMemorySpanExporter, blockmon_config: dict[str, Any]
) -> None:
    """A host that instruments asyncpg and every Redis client itself keeps its
    instrumentation after blockmon's shutdown, and gets one span per call, not two."""
    asyncpg_instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    asyncpg_instrumentor.instrument()
    RedisInstrumentor().instrument()
    try:
        container = ApplicationContainer()
        container.config.from_dict(traced(blockmon_config))
        async with Lifespan(container):
            db, redis_client = await container.postgres.statements(), await container.redis.client()
            assert await db.scalar("SELECT 1") == 1
            spans.clear()
            assert await db.scalar("SELECT 3") == 3
            assert await redis_client.ping()
        finished = list(spans.get_finished_spans())
        assert [s.name for s in finished] == ["SELECT", "PING"]
        assert asyncpg_instrumentor.is_instrumented_by_opentelemetry
        assert RedisInstrumentor().is_instrumented_by_opentelemetry
    finally:
        RedisInstrumentor().uninstrument()
        asyncpg_instrumentor.uninstrument()


async def test_a_failed_statement_keeps_its_parameters_out_of_the_span(
    spans: InMemorySpanExporter, blockmon_config: dict[str, Any]
) -> None:
    """asyncpg names a bad bound value in its error (``invalid input for query argument
    $1: 987654321``); the span says the statement failed, without the error's text."""
    container = ApplicationContainer()
    container.config.from_dict(traced(blockmon_config))
    async with Lifespan(container):
        db = await container.postgres.statements()
        engine = await container.postgres.engine()
        assert await db.scalar("SELECT 1") == 1
        spans.clear()
        with pytest.raises(Exception, match="TopSecretValue42"):
            await db.fetch_one("SELECT CAST(:x AS int) AS x", {"x": "TopSecretValue42"})
        with pytest.raises(Exception, match="987654321"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT CAST(:x AS text) AS x"), {"x": 987654321})
    failed = [
        s for s in db_spans(list(spans.get_finished_spans()), "postgresql")
        if s.status.status_code is StatusCode.ERROR
    ]  # fmt: skip
    assert len(failed) == 2, failed
    seen = everything_in(list(spans.get_finished_spans()))
    assert "TopSecretValue42" not in seen and "987654321" not in seen
