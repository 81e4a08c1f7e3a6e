"""Read replicas: one engine per replica beside the writer, and a `Router` that picks
the engine per operation, as SQLAlchemy advises (not per statement).

Reads that may lag go through ``router.read_session()`` / ``router.read_connection()``;
everything else uses the writer (``engine``, ``transactions``). A replica that refuses a
connection is skipped for ``postgres.replica_retry_after`` seconds; when none is left,
reads go to the writer (``postgres.replica_fallback: true``) or fail with
`NoHealthyReplica`. Their health (`replication_lag`) is read by
`blockmon.health.checks.replicas`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from blockmon.config.log import get_logger
from blockmon.config.postgres_url import scheme_problem
from blockmon.config.secrets import redact
from blockmon.config.settings import PostgresSettings
from blockmon.errors import ConfigError, NoHealthyReplica
from blockmon.postgres.engine import create_engine, engine_url

_log = get_logger("blockmon.replicas")
CONNECT_ERRORS = (exc.DBAPIError, OSError, TimeoutError)
# Lag is 0 while the replica has replayed all it received (an idle primary writes
# nothing, so the last replayed commit grows old without any lag).
_LAG_SQL = text(
    "SELECT pg_is_in_recovery(), CASE "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)
# One server, told apart from a promoted copy of it (same system identifier, its own
# start time) and from any other server.
_IDENTITY_SQL = text(
    "SELECT (SELECT system_identifier FROM pg_control_system()), pg_postmaster_start_time()"
)


def replica_url(settings: PostgresSettings, index: int) -> str:
    """Replica ``index`` as a full URL: ``host:port`` entries borrow the writer's
    user, password and database; URL entries are taken as they are."""
    entry = settings.replicas[index].get_secret_value()
    where = f"postgres.replicas.{index}"
    if "://" in entry:
        try:
            if scheme_problem(urlsplit(entry).scheme.lower()) is not None:
                raise ConfigError(where)
            engine_url(settings.model_copy(update={"target_session_attrs": None}), url=entry)
        except ConfigError:
            raise ConfigError(
                f"{where}: expected host:port or a postgresql:// URL with valid syntax"
            ) from None
        return entry
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: expected host:port or a postgresql:// URL")
    writer = settings.model_copy(update={"url": None, "hosts": [], "target_session_attrs": None})
    base = engine_url(writer) if settings.url is None else engine_url(settings)
    url = base.set(host=host.strip("[]"), port=int(port)).difference_update_query(
        ["host", "target_session_attrs"]
    )
    return url.render_as_string(hide_password=False)


def replica_pool_name(index: int) -> str:
    """The name of read replica ``index``'s pool (its order in postgres.replicas): the
    ``replica`` label of its metrics, the ``pool`` of its logs."""
    return f"replica-{index}"


def create_reader_engines(settings: PostgresSettings) -> list[AsyncEngine]:
    """One engine per replica, with the writer's pool and timeout settings."""
    plain = settings.model_copy(update={"hosts": [], "target_session_attrs": None})
    return [
        create_engine(plain, url=replica_url(settings, i), pool=replica_pool_name(i))
        for i in range(len(settings.replicas))
    ]


def engine_name(engine: AsyncEngine) -> str:
    """``host:port`` of an engine, for logs and health (never credentials)."""
    url = engine.url
    return f"{url.host}:{url.port or 5432}"


@dataclass
class _Reader:
    engine: AsyncEngine
    down_until: float = 0.0


class Router:
    """Picks the engine per operation: a healthy replica for reads (round robin), the
    writer for everything else."""

    def __init__(
        self,
        writer: AsyncEngine,
        readers: Sequence[AsyncEngine] = (),
        *,
        fallback: bool = True,
        retry_after: float = 5.0,
        lag_warn: float = 10.0,
    ) -> None:
        self.writer = writer
        self.fallback = fallback
        self.retry_after = retry_after
        self.lag_warn = lag_warn
        self._readers = [_Reader(engine) for engine in readers]
        self._next = 0

    def __repr__(self) -> str:
        names = ", ".join(engine_name(r.engine) for r in self._readers)
        return f"Router(writer={engine_name(self.writer)}, readers=[{names}])"

    @property
    def readers(self) -> list[AsyncEngine]:
        return [r.engine for r in self._readers]

    def restore(self, index: int) -> None:
        """Put replica ``index`` back in rotation at once (it answered a health check)."""
        self._readers[index].down_until = 0.0

    def _rotation(self) -> list[_Reader]:
        """Readers to try, in round-robin order; those marked down wait out their time."""
        now = time.monotonic()
        count = len(self._readers)
        start, self._next = self._next, (self._next + 1) % max(count, 1)
        ordered = [self._readers[(start + i) % count] for i in range(count)]
        return [r for r in ordered if r.down_until <= now]

    async def _connect_reader(self) -> AsyncConnection:
        for reader in self._rotation():
            try:
                return await reader.engine.connect()
            except CONNECT_ERRORS as error:
                reader.down_until = time.monotonic() + self.retry_after
                _log.warning(
                    "read replica unreachable; skipped for a while",
                    replica=engine_name(reader.engine),
                    retry_after=self.retry_after,
                    error=redact(f"{type(error).__name__}: {error}"),
                )
        if self._readers and not self.fallback:
            raise NoHealthyReplica(
                "no read replica accepts connections and postgres.replica_fallback is false"
            )
        return await self.writer.connect()

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection to a healthy replica (or the writer, see the module docstring)."""
        conn = await self._connect_reader()
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session bound to one replica for the whole operation."""
        async with (
            self.read_connection() as conn,
            AsyncSession(bind=conn, expire_on_commit=False) as session,
        ):
            yield session


async def replication_lag(engine: AsyncEngine, timeout: float = 5.0) -> float | None:
    """Seconds the server's replay is behind its primary; None if it is not a replica.

    Based on ``pg_last_xact_replay_timestamp()``; 0 when everything received is replayed."""
    async with asyncio.timeout(timeout), engine.connect() as conn:
        in_recovery, lag = (await conn.execute(_LAG_SQL)).one()
    return float(lag) if in_recovery else None


async def same_server(one: AsyncEngine, other: AsyncEngine, timeout: float = 5.0) -> bool:
    """Whether two engines reach the same PostgreSQL server (a replica URL that names the
    primary, the usual development setting), whatever host name or address each uses."""
    async with asyncio.timeout(timeout):
        identities = []
        for engine in (one, other):
            async with engine.connect() as conn:
                identities.append(tuple((await conn.execute(_IDENTITY_SQL)).one()))
    return identities[0] == identities[1]


async def router_resource(settings: PostgresSettings, writer: AsyncEngine) -> AsyncIterator[Router]:
    """Container Resource: the router and its reader engines, disposed at shutdown."""
    readers = create_reader_engines(settings)
    try:
        yield Router(
            writer,
            readers,
            fallback=settings.replica_fallback,
            retry_after=settings.replica_retry_after,
            lag_warn=settings.replica_lag_warn,
        )
    finally:
        await asyncio.gather(*(engine.dispose() for engine in readers))
