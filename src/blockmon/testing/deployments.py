"""pytest fixtures that start throwaway Redis Sentinel / Cluster, PostgreSQL primary +
streaming replica, and PgBouncer deployments on free loopback ports.

Enable with ``pytest_plugins = ["blockmon.testing.deployments"]``. Needs redis-server and
redis-cli on PATH, PostgreSQL binaries in ``$BLOCKMON_PG_BIN`` (default
/usr/lib/postgresql/15/bin) and pgbouncer. Fixtures that a test may break (failover)
are per test; the PostgreSQL pair is shared by a session and never broken by a test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from blockmon.testing.servers import (
    ClusterDeployment,
    PgBouncer,
    PostgresServer,
    SentinelDeployment,
    postgres_server,
)


@pytest.fixture
def redis_sentinel() -> Iterator[SentinelDeployment]:
    """A master, a replica and three sentinels (quorum 2), all with passwords."""
    deployment = SentinelDeployment(Path(tempfile.mkdtemp(prefix="bm-sentinel-"))).start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def redis_cluster() -> Iterator[ClusterDeployment]:
    """Three masters with one replica each."""
    deployment = ClusterDeployment(Path(tempfile.mkdtemp(prefix="bm-cluster-"))).start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="session")
def pg_primary() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL primary (trust auth on loopback)."""
    server = postgres_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def pg_replica(pg_primary: PostgresServer) -> Iterator[PostgresServer]:
    """A streaming replica of ``pg_primary`` made with pg_basebackup -R."""
    server = pg_primary.replica()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def pgbouncer(pg_primary: PostgresServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode (10 server connections) before ``pg_primary``."""
    bouncer = PgBouncer(pg_primary.port).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
