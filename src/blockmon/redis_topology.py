"""Redis beyond one server: a Sentinel-managed master and Redis Cluster.

Both clients follow a failover on their own: a Sentinel pool asks the sentinels for
the master's address on every new connection and drops connections to a demoted one;
a cluster client re-reads the slot map when a node fails or answers MOVED. The async
functions at the end report topology state for health checks (they never raise for
an unreachable server; they report it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import RedisClusterException, RedisError

from blockmon.redaction import redact
from blockmon.settings import RedisSettings

RedisClient = Redis | RedisCluster
Status = Literal["pass", "warn", "fail"]
CLUSTER_SLOTS = 16384


def parse_host_port(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[::1]:port"`` (already checked by the settings) to a pair."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def create_sentinel_client(settings: RedisSettings, kwargs: dict[str, Any]) -> Redis:
    """A client for the current master of ``settings.service_name``.

    ``kwargs`` are the connection settings shared with standalone mode; the sentinels
    themselves get the same timeouts and their own credentials."""
    sentinel_kwargs = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "username": settings.sentinel_username,
        "password": _secret(settings.sentinel_password),
        "ssl": settings.tls,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        [parse_host_port(a) for a in settings.sentinels], sentinel_kwargs=sentinel_kwargs
    )
    pool_kwargs = {k: v for k, v in kwargs.items() if k != "timeout"}  # a non-blocking pool
    client: Redis = sentinel.master_for(
        settings.service_name or "",
        db=settings.db,
        username=settings.username,
        password=_secret(settings.password),
        ssl=settings.tls,
        **pool_kwargs,
    )
    return client


def create_cluster_client(settings: RedisSettings, kwargs: dict[str, Any]) -> RedisCluster:
    """A cluster client seeded from ``cluster_nodes`` (or host:port); it discovers the rest."""
    seeds = settings.cluster_nodes or [f"{settings.host}:{settings.port}"]
    cluster_kwargs = {k: v for k, v in kwargs.items() if k != "timeout"}
    return RedisCluster(
        startup_nodes=[ClusterNode(*parse_host_port(a)) for a in seeds],
        username=settings.username,
        password=_secret(settings.password),
        ssl=settings.tls,
        **cluster_kwargs,
    )


async def close_client(client: RedisClient) -> None:
    """Close the client, its pool, and for Sentinel mode the connections to the sentinels."""
    pool = getattr(client, "connection_pool", None)
    await client.aclose()
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


# RedisClusterException (e.g. SlotNotCoveredError) is not a RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)

# --- health-relevant state ---------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    """One node as the cluster sees it (CLUSTER NODES)."""

    address: str
    role: str  # master | replica
    up: bool


@dataclass(frozen=True)
class ClusterState:
    """CLUSTER INFO and CLUSTER NODES as seen by one reachable master."""

    state: str
    slots_assigned: int
    slots_ok: int
    slots_pfail: int
    slots_fail: int
    known_nodes: int
    nodes: list[NodeState] = field(default_factory=list)
    error: str | None = None

    @property
    def coverage(self) -> float:
        """Share of the 16384 slots served by a healthy master (1.0 is full coverage)."""
        return self.slots_ok / CLUSTER_SLOTS

    @property
    def status(self) -> Status:
        """fail: the cluster state is not ok (it refuses commands, or no master answered);
        warn: partial slot coverage (``cluster-require-full-coverage no``), a slot's
        master suspected, or a node down; else pass."""
        if self.state != "ok":
            return "fail"
        if self.slots_ok < CLUSTER_SLOTS or self.slots_pfail or not all(n.up for n in self.nodes):
            return "warn"
        return "pass"


async def cluster_state(client: RedisCluster, timeout: float = 5.0) -> ClusterState:
    """Cluster state, slot coverage and node states for a health check, asked of the
    first master that answers; never raises for a down cluster."""
    error: BaseException | None = None
    try:  # a client that has not run a command yet knows no node
        async with asyncio.timeout(timeout):
            await client.initialize()
    except REDIS_ERRORS as failure:
        error = failure
    for node in client.get_primaries():
        try:
            async with asyncio.timeout(timeout):
                info: dict[str, Any] = await client.cluster_info(target_nodes=node)
                nodes: dict[str, Any] = await client.execute_command(
                    "CLUSTER NODES", target_nodes=node
                )
        except REDIS_ERRORS as failure:
            error = failure
            continue
        return ClusterState(
            state=str(info.get("cluster_state")),
            slots_assigned=int(info.get("cluster_slots_assigned", 0)),
            slots_ok=int(info.get("cluster_slots_ok", 0)),
            slots_pfail=int(info.get("cluster_slots_pfail", 0)),
            slots_fail=int(info.get("cluster_slots_fail", 0)),
            known_nodes=int(info.get("cluster_known_nodes", 0)),
            nodes=[_node_state(address, fields) for address, fields in sorted(nodes.items())],
        )
    reason = _describe(error) if error is not None else "no known master"
    return ClusterState("unreachable", 0, 0, 0, 0, 0, error=reason)


def _node_state(address: str, fields: dict[str, Any]) -> NodeState:
    flags = set(str(fields.get("flags", "")).split(","))
    role = "master" if "master" in flags else "replica"
    up = bool(fields.get("connected")) or "myself" in flags
    return NodeState(address, role, up and not flags & {"fail", "fail?"})


@dataclass(frozen=True)
class SentinelMaster:
    """The master the sentinels currently name for the service (None when they name none)."""

    service_name: str
    address: str | None
    replicas: int = 0
    error: str | None = None

    @property
    def status(self) -> Status:
        return "pass" if self.address is not None else "fail"


async def sentinel_master(client: Redis, timeout: float = 5.0) -> SentinelMaster:
    """The current master behind a Sentinel-mode client; never raises for a lost master."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        raise TypeError("sentinel_master: the client is not in Sentinel mode")
    manager: Sentinel = pool.sentinel_manager
    service = str(pool.service_name)
    try:
        host, port = await asyncio.wait_for(manager.discover_master(service), timeout)
        replicas = await asyncio.wait_for(manager.discover_slaves(service), timeout)
    except REDIS_ERRORS as error:
        return SentinelMaster(service, None, error=_describe(error))
    return SentinelMaster(service, f"{host}:{port}", replicas=len(replicas))


def _describe(error: BaseException) -> str:
    return redact(f"{type(error).__name__}: {error}".rstrip(": "))
