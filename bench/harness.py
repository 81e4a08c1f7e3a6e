"""Measuring: closed-loop throughput windows, interleaved across variants, and medians.

Each case has variants (A, B, C, ...) measured on the same data; a case runs
``rounds`` rounds of A B C, B C A, C A B, ... after one warm-up window per variant, so
background load on a shared machine hits every variant alike and the ratios between
them stay meaningful even when the absolute figures move.

Besides throughput, each variant gets its client CPU per item (per window) and its
Python calls per item (cProfile over sequential calls): the two figures a layer's
overhead is judged on, because the machine's load moves them little or not at all.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Op = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Timing:
    """How long a window lasts and how many rounds a case runs."""

    window: float
    rounds: int
    warmup: float
    profiled_calls: int  # sequential calls profiled (one by one) per variant, in two halves


@dataclass
class Variant:
    name: str
    op: Op
    tasks: int | None = None  # None: the case's task count
    per_op: int = 1  # items per call (keys per pipeline batch)


@dataclass
class Case:
    key: str  # stable id used by the targets
    title: str
    tasks: int
    variants: list[Variant]
    unit: str = "ops/s"
    rounds_factor: int = 1  # cases judged on throughput run this many times the rounds


@dataclass
class Outcome:
    case: Case
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # client CPU seconds per item
    calls: dict[str, float] = field(default_factory=dict)  # Python function calls per item
    errors: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)

    def median(self, variant: str) -> float:
        return statistics.median(self.rates[variant])

    def ratio(self, num: str, den: str) -> float:
        """Median of the per-round ratios: each round's variants ran back to back under
        the same background load, so pairing them cancels most of its drift."""
        pairs = zip(self.rates[num], self.rates[den], strict=True)
        return statistics.median(n / d for n, d in pairs)

    def cpu_per_item(self, variant: str) -> float:
        return statistics.median(self.cpu[variant])

    def paired(self, num: str, den: str, *, cpu: bool = False) -> list[float]:
        """The per-round ratios num/den of throughput (or of CPU per item), sorted."""
        series = self.cpu if cpu else self.rates
        return sorted(n / d for n, d in zip(series[num], series[den], strict=True) if d)

    def calls_ratio(self, num: str, den: str) -> float:
        return self.calls[num] / self.calls[den]


@dataclass
class Row:
    """One printed line that is not a throughput (latency, wall time, ceiling, n/a)."""

    group: str
    name: str
    value: float | None
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Window:
    rate: float  # items per second
    cpu: float  # this process's CPU seconds per item
    errors: int
    first_error: str


async def window(op: Op, tasks: int, seconds: float, per_op: int) -> Window:
    """Run ``tasks`` callers of ``op`` back to back for ``seconds``."""
    done = 0
    errors = 0
    first = ""
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done, errors, first
        clock = time.perf_counter
        while clock() < deadline:
            try:
                await op()
            except Exception as error:
                errors += 1
                if not first:
                    first = f"{type(error).__name__}: {error}"[:200]
            else:
                done += 1

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(tasks)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    items = max(1, done * per_op)
    return Window(done * per_op / elapsed, cpu / items, errors, first)


async def python_calls(op: Op) -> int:
    """Python function calls (cProfile) of one call of ``op``.

    One event-loop iteration first: the loop pops the timers the previous call cancelled
    (a Redis socket timeout, an asyncpg command timeout) in its next iteration if they
    are the earliest in its heap, which depends on what other timers the process has
    (a health loop's sleep, another pool's): 7 calls (``heappop``, ``TimerHandle.__lt__``)
    that landed in some runs' calls and not in others'."""
    await asyncio.sleep(0)
    profile = cProfile.Profile()
    profile.enable()
    try:
        await op()
    finally:
        profile.disable()
    return pstats.Stats(profile).total_calls  # type: ignore[attr-defined]


async def profile_round(case: Case, calls: int, counts: dict[str, list[list[int]]]) -> None:
    """``calls`` sequential calls of each variant, interleaved A B C, A B C, ..., each
    profiled on its own. Unlike time a call count hardly moves with the machine's load,
    so it shows what a layer adds even when throughput is too noisy to. What does move it
    only ever adds calls: an event-loop iteration more when a reply came late, another
    task's step run inside the call (a background health check). Such a disturbance
    lasted a whole block of one variant's calls once (a Redis GET read 378 instead of 337
    in all 31), so the variants take turns call by call, and `interleave` spreads the
    calls over blocks between the rounds (`calls_per_item`)."""
    for variant in case.variants:
        counts[variant.name].append([])
    for _ in range(calls):
        for variant in case.variants:
            counts[variant.name][-1].append(await python_calls(variant.op))


def blocks(total: int, parts: int) -> list[int]:
    """``total`` profiled calls split into ``parts`` blocks as evenly as possible."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def calls_per_item(blocks: list[list[int]]) -> float:
    """The median over the blocks of each block's least count. What disturbs a count
    only ever adds calls, so a block's least count is its estimate of the call's own
    path; the median of those moves with neither an unlucky floor (the least of all 31
    read the floor in one run and 2-4 calls above it in the next under load, and a 1.02x
    target on ~600 calls has 12 to spare) nor a disturbance lasting a whole block (once
    +40 calls on every call of one variant: an extra event-loop iteration), nor a run in
    which most calls of one variant carry such an iteration (a Redis GET read 384
    instead of 329 as the median of its calls)."""
    return float(statistics.median(min(block) for block in blocks if block))


async def interleave(case: Case, timing: Timing) -> Outcome:
    # Objects alive now (engines, containers, pools) live for the whole case: keep the
    # cyclic GC from scanning them again and again inside somebody's window.
    gc.collect()
    gc.freeze()
    outcome = Outcome(case)
    counts: dict[str, list[list[int]]] = {variant.name: [] for variant in case.variants}
    for variant in case.variants:
        await window(variant.op, variant.tasks or case.tasks, timing.warmup, variant.per_op)
        outcome.rates[variant.name] = []
        outcome.cpu[variant.name] = []
        outcome.errors[variant.name] = 0
    rounds = timing.rounds * case.rounds_factor
    sizes = blocks(timing.profiled_calls, rounds + 1)  # before the rounds and after each
    await profile_round(case, sizes[0], counts)
    for turn, size in enumerate(sizes[1:]):
        # Each round starts one variant later (A B C, B C A, C A B, ...): no variant always
        # runs right after the same neighbour or right after the profiling.
        shift = turn % len(case.variants)
        for variant in case.variants[shift:] + case.variants[:shift]:
            measured = await window(
                variant.op, variant.tasks or case.tasks, timing.window, variant.per_op
            )
            outcome.rates[variant.name].append(measured.rate)
            outcome.cpu[variant.name].append(measured.cpu)
            outcome.errors[variant.name] += measured.errors
            if measured.first_error and variant.name not in outcome.first_error:
                outcome.first_error[variant.name] = measured.first_error
        await profile_round(case, size, counts)
    for variant in case.variants:
        outcome.calls[variant.name] = calls_per_item(counts[variant.name]) / variant.per_op
    return outcome


def latencies(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of ``samples`` in seconds."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
