"""Health of the Redis topologies: a Cluster (state, slot coverage, nodes) and a
Sentinel-managed master (its address and replicas). The queries never raise for an
unreachable server; they report it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from blockmon.config.secrets import redact
from blockmon.health.model import Observation, Status
from blockmon.redis.topology import REDIS_ERRORS

CheckFunction = Callable[[], Awaitable[list[Observation]]]
CLUSTER_SLOTS = 16384


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
            return Status.FAIL
        if self.slots_ok < CLUSTER_SLOTS or self.slots_pfail or not all(n.up for n in self.nodes):
            return Status.WARN
        return Status.PASS


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
        return Status.PASS if self.address is not None else Status.FAIL


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


def redis_cluster_check(client: RedisCluster, timeout: float = 5.0) -> CheckFunction:
    """State (fail unless ``ok``), slot coverage (warn below 100 %) and every node's role
    and liveness (warn naming the nodes that are down)."""

    async def check() -> list[Observation]:
        state = await cluster_state(client, timeout)
        ok = state.state == "ok"
        observations = [
            Observation(
                "state",
                state.state,
                status=Status.PASS if ok else Status.FAIL,
                output=None
                if ok
                else f"cluster state {state.state}: {state.error or ''}".rstrip(": "),
            )
        ]
        if state.error is not None:
            return observations
        missing = CLUSTER_SLOTS - state.slots_ok
        observations.append(
            Observation(
                "slotCoverage",
                round(state.coverage * 100, 2),
                "percent",
                Status.WARN if missing or state.slots_pfail else Status.PASS,
                f"{missing} of {CLUSTER_SLOTS} slots not served, {state.slots_pfail} suspected"
                if missing or state.slots_pfail
                else None,
            )
        )
        down = [f"{n.address} ({n.role})" for n in state.nodes if not n.up]
        observations.append(
            Observation(
                "nodes",
                {n.address: {"role": n.role, "up": n.up} for n in state.nodes},
                "nodes",
                Status.WARN if down else Status.PASS,
                f"node down: {', '.join(down)}" if down else None,
            )
        )
        return observations

    return check


def redis_sentinel_check(
    client: Redis, info_check: CheckFunction, timeout: float = 5.0
) -> CheckFunction:
    """The current master's address (fail when the sentinels name none) and its replica
    count (warn at 0: one more failure loses the service), then the usual INFO
    observations of that master (``info_check``)."""

    async def check() -> list[Observation]:
        master, info = await asyncio.gather(
            sentinel_master(client, timeout), info_check(), return_exceptions=True
        )
        if isinstance(master, BaseException):
            raise master
        if master.address is None:
            output = f"no master for {master.service_name}: {master.error or 'unknown'}"
            return [Observation("master", None, status=Status.FAIL, output=output)]
        observations = [
            Observation("master", master.address),
            Observation(
                "replicas",
                master.replicas,
                "replicas",
                Status.PASS if master.replicas else Status.WARN,
                None if master.replicas else f"master {master.address} has no replica",
            ),
        ]
        if isinstance(info, BaseException):
            output = redact(f"{type(info).__name__}: {info}".rstrip(": "))
            observations.append(Observation("role", None, status=Status.FAIL, output=output))
        else:
            observations.extend(info)
        return observations

    return check
