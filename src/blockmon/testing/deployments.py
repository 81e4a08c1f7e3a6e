"""pytest fixtures that start throwaway servers from `blockmon.testing.servers`: a
PostgreSQL and a Redis a test may stop, kill or restart; Redis Sentinel and Cluster; a
PostgreSQL primary with a streaming replica; PgBouncer. All on free loopback ports.

Enable with ``pytest_plugins = ["blockmon.testing.deployments"]``. PostgreSQL and Redis
programs come from the system, else from the ``embedded`` extra's wheels; PgBouncer from
the system. Fixtures a test may break are per test or restarted before each test; every
server and folder is removed at the end, also when a test fails or the run is interrupted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blockmon.testing.servers import (
    ClusterDeployment,
    PgBouncer,
    PostgresServer,
    RedisServer,
    SentinelDeployment,
    postgres_server,
)


@pytest.fixture(scope="session")
def _pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def _redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def pg_server(_pg_server: PostgresServer) -> PostgresServer:
    """The session's throwaway PostgreSQL, running (restarted if a test left it down);
    tests may stop, kill or restart it."""
    return _pg_server.start()


@pytest.fixture
def redis_server(_redis_server: RedisServer) -> RedisServer:
    """The session's throwaway Redis, running (restarted if a test left it down); tests
    may stop, kill or restart it."""
    return _redis_server.start()


@pytest.fixture
def redis_sentinel() -> Iterator[SentinelDeployment]:
    """A master, a replica and three sentinels (quorum 2), all with passwords."""
    with SentinelDeployment() as deployment:
        yield deployment


@pytest.fixture
def redis_cluster() -> Iterator[ClusterDeployment]:
    """Three masters with one replica each."""
    with ClusterDeployment() as deployment:
        yield deployment


@pytest.fixture(scope="session")
def pg_primary() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL primary that no test breaks."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_replica(pg_primary: PostgresServer) -> Iterator[PostgresServer]:
    """A streaming replica of ``pg_primary`` made with pg_basebackup -R."""
    with pg_primary.replica() as server:
        yield server


@pytest.fixture(scope="session")
def pgbouncer(pg_primary: PostgresServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode (10 server connections) before ``pg_primary``."""
    with PgBouncer(pg_primary.port) as bouncer:
        yield bouncer
