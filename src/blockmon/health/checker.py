"""The health checker: named checks run concurrently, each bounded by its own timeout.

On-demand checks are single-flight and cached for ``cache_ttl`` seconds, so a storm of
probes costs at most one run of each check per period. No lock is held while a check
waits on the network: callers share one task per check. A periodic loop keeps the
results (and the metrics fed from them) fresh, and each change of state is logged once
and kept (the last `CHANGES_KEPT`) for the status page.

A check changes to fail only after ``failure_threshold`` failed runs in a row, and back
after ``success_threshold`` runs that did not fail; until then it reports its last status
with the run that disagrees in ``pending``. Checks belong to named groups
(``/health/<group>``). Synchronous checks run on the checker's own threads
(`blockmon.health.threads`), never more than one call of a check at a time. Every text a
result keeps is capped (`blockmon.health.model.cap`).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from blockmon.config.log import get_logger
from blockmon.config.secrets import redact
from blockmon.config.settings import CHECK_NAME as _NAME
from blockmon.config.settings import GROUP_NAME
from blockmon.health.model import CheckResult, Observation, Report, Status, cap, now, worst
from blockmon.health.threads import CheckThreads

_log = get_logger("blockmon.health")
READINESS = "readiness"  # default members: the critical checks
LIVENESS = "liveness"  # default members: none
Thresholds = tuple[int | None, int | None]  # (failure, success); None: the checker's

CheckOutcome = None | bool | Status | Sequence[Observation]
CheckFunction = Callable[[], Awaitable[CheckOutcome] | CheckOutcome]
Listener = Callable[[CheckResult], None]
CHANGES_KEPT = 20


@dataclass(frozen=True)
class StateChange:
    """One change of a check's status; ``previous`` is None for a first result that is
    not pass. ``reason`` is the (redacted) reason of the new status."""

    at: datetime
    component: str
    previous: Status | None
    status: Status
    reason: str | None


@dataclass
class _Check:
    name: str
    function: CheckFunction
    critical: bool
    component_type: str
    timeout: float
    is_async: bool
    groups: frozenset[str] = frozenset()
    failure_threshold: int = 1
    success_threshold: int = 1
    runs: int = 0
    failures: int = 0  # failed runs in a row
    successes: int = 0  # runs in a row that did not fail
    last: CheckResult | None = None
    last_at: float = float("-inf")
    inflight: asyncio.Task[CheckResult] | None = None
    call: Future[Any] | None = None  # a sync check's last call on the checker's threads


class _Busy(Exception):
    """A sync check's previous call has not returned: no second thread for it."""


@dataclass(eq=False)
class HealthChecker:
    """Register checks with `register`; ask with `check`, `report` or `readiness`.

    The constructor takes the settings below; the checker's own state (its checks, threads,
    loop and history) is not an argument, and two checkers are equal only if they are one."""

    timeout: float = 5.0
    cache_ttl: float = 1.0
    interval: float = 30.0
    slow_response_warn: float | None = None
    listeners: list[Listener] = field(default_factory=list)
    # ``span(name)`` around each run of a check (tracing.enabled); None: no span, no cost.
    span: Callable[[str], AbstractContextManager[object]] | None = None
    failure_threshold: int = 1
    success_threshold: int = 1
    # per check name: (failure, success) thresholds over the register() arguments
    thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    # group name: the checks in it (besides those registered with the group)
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)
    check_threads: int = 4
    _threads: CheckThreads | None = field(default=None, init=False, repr=False)
    _checks: dict[str, _Check] = field(default_factory=dict, init=False, repr=False)
    _orphans: set[asyncio.Task[Any]] = field(default_factory=set, init=False, repr=False)
    _loop_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _changes: collections.deque[StateChange] = field(
        default_factory=lambda: collections.deque(maxlen=CHANGES_KEPT), init=False, repr=False
    )

    def register(
        self,
        name: str,
        function: CheckFunction,
        *,
        critical: bool = True,
        component_type: str = "component",
        timeout: float | None = None,
        groups: Iterable[str] = (),
        failure_threshold: int | None = None,
        success_threshold: int | None = None,
    ) -> None:
        """Add a check. ``function`` (sync or async) returns None or True (pass), False
        (fail), a Status, or Observations (the worst of their statuses); raising fails it.
        A sync function runs on the checker's own threads so it cannot block the event
        loop. ``groups``: the named groups it belongs to (``/health/<group>``); the
        thresholds default to the checker's, and ``monitoring.checks.<name>`` overrides."""
        if not _NAME.match(name):
            raise ValueError(f"check name: must match {_NAME.pattern}, got {name!r}")
        if name in self._checks:
            raise ValueError(f"check name: {name!r} is already registered")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {timeout!r}")
        chosen = frozenset(groups)
        for group in chosen:
            if not GROUP_NAME.match(group):
                raise ValueError(f"groups: must match {GROUP_NAME.pattern}, got {group!r}")
        for what, given in (("failure", failure_threshold), ("success", success_threshold)):
            if given is not None and given < 1:
                raise ValueError(f"{what}_threshold: must be >= 1, got {given!r}")
        failures, successes = self.thresholds.get(name, (None, None))
        is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 - async callable objects
        )
        self._checks[name] = _Check(
            name,
            function,
            critical,
            component_type,
            timeout or self.timeout,
            is_async,
            chosen,
            failures or failure_threshold or self.failure_threshold,
            successes or success_threshold or self.success_threshold,
        )

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)

    def runs(self, name: str) -> int:
        """How many times the check actually ran (cache hits and joins excluded)."""
        return self._checks[name].runs

    def last(self, name: str) -> CheckResult | None:
        return self._checks[name].last

    def changes(self) -> list[StateChange]:
        """The last `CHANGES_KEPT` changes of state, newest first."""
        return list(reversed(self._changes))

    async def check(self, name: str, *, max_age: float | None = None) -> CheckResult:
        """The result of ``name``: cached if younger than ``max_age`` (default cache_ttl),
        else the run in flight, else a new run."""
        check = self._checks[name]
        age = self.cache_ttl if max_age is None else max_age
        if check.last is not None and time.monotonic() - check.last_at < age:
            return check.last
        if check.inflight is None:
            task = asyncio.create_task(self._run(check), name=f"health:{name}")
            task.add_done_callback(lambda done: _clear(check, done))
            check.inflight = task
        return await asyncio.shield(check.inflight)

    async def report(self, *, critical_only: bool = False, max_age: float | None = None) -> Report:
        """Run (or reuse) the selected checks concurrently."""
        chosen = [c for c in self._checks.values() if c.critical or not critical_only]
        return await self._report(chosen, max_age)

    async def group(self, name: str, *, max_age: float | None = None) -> Report:
        """The report of the checks in group ``name``: readiness, liveness, a configured
        one, or one a check was registered with; KeyError for any other name."""
        listed = self.groups.get(name)
        if listed is None and name == READINESS:
            chosen = [c for c in self._checks.values() if c.critical or name in c.groups]
        elif listed is None:
            chosen = [c for c in self._checks.values() if name in c.groups]
            if not chosen and name != LIVENESS:
                raise KeyError(name)
        else:
            chosen = [c for c in self._checks.values() if c.name in listed or name in c.groups]
        return await self._report(chosen, max_age)

    async def _report(self, chosen: list[_Check], max_age: float | None) -> Report:
        age = self.cache_ttl if max_age is None else max_age
        clock = time.monotonic()
        fresh = [c.last for c in chosen if c.last is not None and clock - c.last_at < age]
        if len(fresh) == len(chosen):  # all cached: no task per check (the probe's hot path)
            return Report(tuple(r for r in fresh if r is not None))
        results = await asyncio.gather(*(self.check(c.name, max_age=max_age) for c in chosen))
        return Report(tuple(results))

    async def readiness(self) -> Report:
        """The readiness group (by default the critical checks), as readiness probes want."""
        return await self.group(READINESS)

    async def _run(self, check: _Check) -> CheckResult:
        started, checked_at = time.perf_counter(), now()
        inner = asyncio.ensure_future(
            self._invoke(check) if self.span is None else self._traced(check, self.span)
        )
        try:
            await asyncio.wait({inner}, timeout=check.timeout)
        finally:
            if not inner.done():
                inner.cancel()
                # A cancelled driver call can be slow to unwind (e.g. a blackholed
                # socket): keep a reference, but do not wait for it.
                self._orphans.add(inner)
                inner.add_done_callback(self._reap)
        elapsed = time.perf_counter() - started
        status, observations, output = self._interpret(inner, check.timeout)
        output = cap(output) if output is not None else None
        if status == Status.PASS and self.slow_response_warn and elapsed > self.slow_response_warn:
            status = Status.WARN
            output = (
                f"slow response: {elapsed * 1000:.0f} ms > {self.slow_response_warn * 1000:.0f} ms"
            )
        result = CheckResult(
            component=check.name,
            component_type=check.component_type,
            critical=check.critical,
            status=status,
            response_time=elapsed,
            checked_at=checked_at,
            output=output,
            observations=tuple(_capped(o) for o in observations),
        )
        return self._record(check, result)

    async def _traced(
        self, check: _Check, span: Callable[[str], AbstractContextManager[object]]
    ) -> CheckOutcome:
        with span(check.name):
            return await self._invoke(check)

    async def _invoke(self, check: _Check) -> CheckOutcome:
        if check.is_async:
            outcome = check.function()
        else:
            if check.call is not None and not check.call.done():
                raise _Busy("its previous run has not returned yet")
            if self._threads is None:
                self._threads = CheckThreads(self.check_threads)
            check.call = self._threads.submit(check.function)
            outcome = await asyncio.wrap_future(check.call)
        if inspect.isawaitable(outcome):
            return await outcome
        return outcome

    @staticmethod
    def _interpret(
        task: asyncio.Future[CheckOutcome], timeout: float
    ) -> tuple[Status, Sequence[Observation], str | None]:
        if not task.done() or task.cancelled():
            return Status.FAIL, (), f"timed out after {timeout:g} s"
        error = task.exception()
        if isinstance(error, _Busy):
            return Status.FAIL, (), str(error)
        if error is not None:
            return Status.FAIL, (), redact(f"{type(error).__name__}: {error}".rstrip(": "))
        outcome = task.result()
        if outcome is None or outcome is True:
            return Status.PASS, (), None
        if outcome is False:
            return Status.FAIL, (), "check returned False"
        if isinstance(outcome, Status):
            return outcome, (), None
        observations = list(outcome)
        return worst([o.status for o in observations]), observations, None

    def _record(self, check: _Check, run: CheckResult) -> CheckResult:
        """Keep what ``run`` (after the thresholds) says, log a change, tell listeners."""
        previous = check.last
        result = _damped(check, run)
        check.runs += 1
        check.last, check.last_at = result, time.monotonic()
        if (previous is None and result.status != Status.PASS) or (
            previous is not None and previous.status != result.status
        ):
            _log_change(previous, result)
            before = previous.status if previous else None
            self._changes.append(
                StateChange(
                    result.checked_at, result.component, before, result.status, result.reason
                )
            )
        for listener in self.listeners:
            try:
                listener(result)
            except Exception as error:  # a metrics bug must not turn into a failed probe
                _log.error(
                    "health listener error", error=redact(f"{type(error).__name__}: {error}")
                )
        return result

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._orphans.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" noise

    async def start(self) -> None:
        """Start the periodic loop (first run after one interval)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._periodic(), name="health:loop")

    async def stop(self) -> None:
        """Stop the loop and every run in flight; waits at most a second for them."""
        tasks: list[asyncio.Task[Any]] = [t for t in self._tasks() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self._loop_task = None
        if self._threads is not None:
            self._threads.shutdown()  # a hung call keeps its (daemon) thread till it returns
            self._threads = None

    def _tasks(self) -> Iterable[asyncio.Task[Any]]:
        if self._loop_task is not None:
            yield self._loop_task
        yield from (c.inflight for c in self._checks.values() if c.inflight is not None)
        yield from list(self._orphans)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.report(max_age=0)
            except Exception as error:  # nothing may stop the loop
                _log.error("health loop error", error=redact(f"{type(error).__name__}: {error}"))


def _damped(check: _Check, run: CheckResult) -> CheckResult:
    """``run`` as reported: a failure before ``failure_threshold`` failures in a row
    keeps the last status, a non-failure before ``success_threshold`` keeps it failing;
    the run that disagrees is in ``pending``. A first run is reported as it is."""
    failed = run.status == Status.FAIL
    check.failures = check.failures + 1 if failed else 0
    check.successes = 0 if failed else check.successes + 1
    last = check.last
    if last is None:
        return run
    if failed and last.status != Status.FAIL and check.failures < check.failure_threshold:
        why = f"fail {check.failures}/{check.failure_threshold}: {run.reason}"
        return replace(
            last, response_time=run.response_time, checked_at=run.checked_at, pending=cap(why)
        )
    if not failed and last.status == Status.FAIL and check.successes < check.success_threshold:
        return replace(
            run,
            status=Status.FAIL,
            output=last.reason,
            pending=f"{run.status} {check.successes}/{check.success_threshold}",
        )
    return run


def _capped(observation: Observation) -> Observation:
    value, output = observation.value, observation.output
    if isinstance(value, str):
        value = cap(value)
    if output is not None:
        output = cap(output)
    return replace(observation, value=value, output=output)


def _log_change(previous: CheckResult | None, result: CheckResult) -> None:
    before = str(previous.status) if previous else "unknown"
    fields = {
        "component": result.component,
        "status": str(result.status),
        "previous": before,
        "reason": result.reason,
        "critical": result.critical,
    }
    emit = _log.info if result.status == Status.PASS else _log.warning
    emit(f"health: {result.component} {before} -> {result.status}", **fields)


def _clear(check: _Check, task: asyncio.Task[CheckResult]) -> None:
    if check.inflight is task:
        check.inflight = None
    if not task.cancelled():
        task.exception()
