"""Whether the process wants traffic, apart from its checks: not while the Lifespan is still
starting the Resources, not once shutdown began (so a load balancer stops sending before
the server stops accepting), and, when asked, not until the schema was seen at head."""

from __future__ import annotations

from blockmon.health.checker import HealthChecker
from blockmon.health.model import Status

STARTING = "starting"
SHUTTING_DOWN = "shutting down"
SCHEMA_CHECK = "postgres:schema"


class Readiness:
    """``refusing`` is why /readyz answers 503 whatever the checks say, or None.

    A container started without blockmon's Lifespan is never refused here (nothing would
    say it finished starting). Setting the state is a plain assignment, so a signal
    handler may call `shutting_down` directly.
    """

    def __init__(self) -> None:
        self.refusing: str | None = None
        self.schema_seen_at_head = False

    def starting(self) -> None:
        self.refusing = STARTING

    def ready(self) -> None:
        self.refusing = None

    def shutting_down(self) -> None:
        self.refusing = SHUTTING_DOWN

    async def schema_not_at_head(self, checker: HealthChecker) -> str | None:
        """Why the schema is not at the migrations' heads, or None once it was seen there.

        Only the first time counts: a later deployment migrating further must not take the
        instances still running the previous release out of the load balancer.
        """
        if self.schema_seen_at_head:
            return None
        try:
            result = await checker.check(SCHEMA_CHECK)
        except KeyError:
            return f"schema unknown: no {SCHEMA_CHECK} check"
        if result.status == Status.FAIL:
            return f"schema unknown: {result.output or 'check failed'}"
        behind = [o.output or "not at head" for o in result.observations if o.status != Status.PASS]
        if behind or not result.observations:
            return "; ".join(behind) or "schema unknown: no revision reported"
        self.schema_seen_at_head = True
        return None
