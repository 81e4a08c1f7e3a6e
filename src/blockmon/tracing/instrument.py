"""Turning the maintained OpenTelemetry instrumentations on and off for blockmon.

- Statements: ``opentelemetry-instrumentation-asyncpg``. Every statement reaches
  PostgreSQL through asyncpg, whether SQLAlchemy sent it or `Statements` did, so one
  span per round trip covers both paths (SQLAlchemy's own instrumentation would add a
  second span for each SQLAlchemy statement). It patches asyncpg's classes, process-wide:
  blockmon turns it on with the first traced engine and off with the last, unless the
  host had turned it on itself. Parameters are never recorded (``capture_parameters``
  stays off): ``db.statement`` is the SQL with ``$n`` placeholders.
- Redis: ``opentelemetry-instrumentation-redis`` on this client only
  (``instrument_client``); ``db.statement`` is the command with ``?`` for every argument.
- Health checks: one span per check, ``health <name>``.
- Logs: while tracing is on, blockmon's events carry ``trace_id``/``span_id`` of the
  active span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.trace import StatusCode

from blockmon.config.log import add_event_fields, remove_event_fields
from blockmon.config.secrets import redact
from blockmon.redis.topology import RedisClient


class _Asyncpg:
    """Reference count of the traced engines; the patch is blockmon's only if it made it."""

    users = 0
    ours = False


@contextmanager
def statements_traced() -> Iterator[None]:
    """asyncpg instrumented (and trace ids in logs) while at least one engine is traced."""
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # a singleton
    if _Asyncpg.users == 0:
        _Asyncpg.ours = not instrumentor.is_instrumented_by_opentelemetry
        if _Asyncpg.ours:
            instrumentor.instrument()
        add_event_fields(trace_ids)
    _Asyncpg.users += 1
    try:
        yield
    finally:
        _Asyncpg.users -= 1
        if _Asyncpg.users == 0:
            remove_event_fields(trace_ids)
            if _Asyncpg.ours:
                instrumentor.uninstrument()


@contextmanager
def commands_traced(client: RedisClient) -> Iterator[None]:
    """This client's commands traced; left alone when the host traces every client."""
    if RedisInstrumentor().is_instrumented_by_opentelemetry:
        yield
        return
    RedisInstrumentor.instrument_client(client)
    try:
        yield
    finally:
        RedisInstrumentor.uninstrument_client(client)


def check_spans() -> Callable[[str], AbstractContextManager[object]]:
    """``span(name)``: a span around one health check, child of the request asking. A
    check's error marks it failed with the redacted message health shows, never the raw
    exception (a check may fail with a DSN in its message)."""
    tracer = trace.get_tracer("blockmon.health")

    @contextmanager
    def span(name: str) -> Iterator[object]:
        with tracer.start_as_current_span(
            f"health {name}",
            attributes={"blockmon.health.check": name},
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            try:
                yield current
            except BaseException as error:
                message = redact(f"{type(error).__name__}: {error}".rstrip(": "))
                current.set_status(StatusCode.ERROR, message)
                raise

    return span


def trace_ids() -> dict[str, str]:
    """The active span's ids as the W3C trace context writes them; none without a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }
