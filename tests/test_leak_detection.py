"""Connection leak detection (issue 15, part 3): connections leaked on purpose through
the engine, Statements, Transactions and a read replica's pool are reported once with
the file and line that took them, counted, and their return is logged; off, nothing is
captured or said."""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from support import captured_logs

from blockmon import ApplicationContainer, Lifespan
from blockmon.cli import main
from blockmon.config.settings import Settings
from blockmon.postgres import leaks
from blockmon.postgres import statements as statements_module
from blockmon.postgres.engine import engine_url
from blockmon.postgres.leaks import LEASE
from blockmon.postgres.pool import guard_for

# every test on the fast path and on the public fallback (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("sqlalchemy_path")

THRESHOLD = 0.2  # seconds
WAIT = 30.0  # seconds: generous bound for a timer on a loaded machine
LEAKED = "postgres connection held longer than postgres.leak_detection_threshold"
RETURNED = "postgres connection reported as a possible leak was returned"
SECRET = "Hunter2LeakParam"


def line_of(marker: str) -> str:
    """``this file:line`` of the one line ending with ``# marker``."""
    lines = Path(__file__).read_text().splitlines()
    [number] = [i for i, line in enumerate(lines, 1) if line.endswith(f"# {marker}")]
    return f"{__file__}:{number}"


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


async def logged(stream: io.StringIO, event: str, acquired_at: str) -> dict[str, Any]:
    """The record of ``event`` about the connection taken at ``acquired_at``, polled for."""
    deadline = time.monotonic() + WAIT
    while True:
        for record in records(stream):
            if record["event"].startswith(event) and record.get("acquired_at") == acquired_at:
                return record
        assert time.monotonic() < deadline, f"no {event!r} for {acquired_at} in {WAIT} s"
        await asyncio.sleep(0.05)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    with captured_logs("info") as stream:
        yield stream


def _config(config: dict[str, Any], settings: Settings, threshold: float) -> dict[str, Any]:
    """Leak detection at ``threshold``, and the test server again as a read replica: a
    reader engine with a pool of its own (no replication needed to hold a connection)."""
    url = engine_url(settings.postgres)
    postgres = {
        **config["postgres"],
        "leak_detection_threshold": threshold,
        # the whole URL: the run's server may be reached through a Unix socket
        "replicas": [url.render_as_string(hide_password=False)],
    }
    return {**config, "postgres": postgres}


@pytest.fixture
async def container(
    blockmon_config: dict[str, Any], blockmon_settings: Settings
) -> AsyncIterator[ApplicationContainer]:
    container = ApplicationContainer()
    container.config.from_dict(_config(blockmon_config, blockmon_settings, THRESHOLD))
    async with Lifespan(container):
        yield container


async def leaks_counted(container: ApplicationContainer, replica: str | None = None) -> float:
    registry = (await container.monitoring.metrics()).registry
    if replica is None:
        return registry.get_sample_value("postgres_connection_leaks_total") or 0.0
    labels = {"replica": replica}
    return registry.get_sample_value("postgres_replica_connection_leaks_total", labels) or 0.0


TEST_ENGINE = "test_a_connection_held_through_the_engine_is_reported"


async def test_a_connection_held_through_the_engine_is_reported(
    container: ApplicationContainer, log_lines: io.StringIO
) -> None:
    engine = await container.postgres.engine()
    before = await leaks_counted(container)
    conn = await engine.connect()  # leak: engine
    try:
        await conn.execute(text("SELECT :p"), {"p": SECRET})
        warning = await logged(log_lines, LEAKED, line_of("leak: engine"))
        assert warning["level"] == "warning"
        assert warning["pool"] == "primary"
        assert warning["threshold_s"] == THRESHOLD
        assert warning["held_s"] >= THRESHOLD
        # the stack is a traceback of code locations, ending at the acquiring line, and
        # never the source text (a literal there would be logged: this line's comment)
        where = warning["stack"].splitlines()[-1]
        line = line_of("leak: engine").rsplit(":", 1)[1]
        assert where == f'  File "{__file__}", line {line}, in {TEST_ENGINE}'
        assert "leak: engine" not in warning["stack"]
        assert await leaks_counted(container) >= before + 1
    finally:
        await conn.close()
    returned = await logged(log_lines, RETURNED, line_of("leak: engine"))
    assert returned["level"] == "info" and returned["pool"] == "primary"
    assert returned["held_s"] >= warning["held_s"]
    assert SECRET not in log_lines.getvalue()
    # one report per leak: the warning is not repeated however long it was held
    leaked = [r for r in records(log_lines) if r["event"].startswith(LEAKED)]
    assert [r["acquired_at"] for r in leaked].count(line_of("leak: engine")) == 1


async def test_a_unit_of_work_held_through_statements_is_reported(
    container: ApplicationContainer, log_lines: io.StringIO
) -> None:
    statements = await container.postgres.statements()
    before = await leaks_counted(container)
    async with statements.transaction() as tx:  # leak: statements
        await tx.scalar("SELECT 1")
        warning = await logged(log_lines, LEAKED, line_of("leak: statements"))
        assert warning["pool"] == "primary"
        assert await leaks_counted(container) >= before + 1
    returned = await logged(log_lines, RETURNED, line_of("leak: statements"))
    assert returned["held_s"] >= THRESHOLD


async def test_a_long_statement_through_statements_is_reported(
    container: ApplicationContainer, log_lines: io.StringIO
) -> None:
    statements = await container.postgres.statements()
    await statements.scalar("SELECT pg_sleep(:s)", {"s": THRESHOLD * 5})  # leak: statement
    await logged(log_lines, LEAKED, line_of("leak: statement"))
    await logged(log_lines, RETURNED, line_of("leak: statement"))


async def test_a_task_of_library_code_alone_names_its_first_frame(
    container: ApplicationContainer, log_lines: io.StringIO
) -> None:
    """A task whose every frame is blockmon's (as its health checks are) is not "unknown":
    the report names the task's first frame."""
    statements = await container.postgres.statements()
    await asyncio.create_task(statements.scalar("SELECT pg_sleep(:s)", {"s": THRESHOLD * 5}))
    deadline = time.monotonic() + WAIT
    while not (found := [r for r in records(log_lines) if r["event"].startswith(LEAKED)]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    ours = [r for r in found if r["acquired_at"].startswith(f"{statements_module.__file__}:")]
    assert ours and "in scalar" in ours[0]["stack"]


async def test_a_session_held_through_transactions_is_reported(
    container: ApplicationContainer, log_lines: io.StringIO
) -> None:
    transactions = await container.postgres.transactions()
    before = await leaks_counted(container)
    async with transactions.transaction() as session:
        # a session takes its connection at its first statement
        await session.execute(text("SELECT 1"))  # leak: transactions
        await logged(log_lines, LEAKED, line_of("leak: transactions"))
        assert await leaks_counted(container) >= before + 1
    await logged(log_lines, RETURNED, line_of("leak: transactions"))


async def test_a_connection_held_from_a_replica_pool_is_reported(
    container: ApplicationContainer, log_lines: io.StringIO
) -> None:
    router = await container.postgres.router()
    before = await leaks_counted(container, "replica-0")
    async with router.read_connection() as conn:  # leak: replica
        await conn.execute(text("SELECT 1"))
        warning = await logged(log_lines, LEAKED, line_of("leak: replica"))
        assert warning["pool"] == "replica-0"
        assert await leaks_counted(container, "replica-0") >= before + 1
    returned = await logged(log_lines, RETURNED, line_of("leak: replica"))
    assert returned["pool"] == "replica-0"


async def test_a_connection_given_back_in_time_is_not_reported(
    blockmon_config: dict[str, Any], blockmon_settings: Settings, log_lines: io.StringIO
) -> None:
    # a threshold far above a SELECT 1 however loaded the machine, and waited out
    container = ApplicationContainer()
    container.config.from_dict(_config(blockmon_config, blockmon_settings, 2.0))
    async with Lifespan(container):
        engine = await container.postgres.engine()
        async with engine.connect() as conn:  # quick
            info = (await conn.get_raw_connection()).info
            lease = info[LEASE]  # on: the checkout's frames and timer, kept while it is out
            await conn.execute(text("SELECT 1"))
        assert LEASE not in info and lease.timer.cancelled()
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + WAIT
        while loop.time() <= lease.timer.when():  # the moment it would have fired
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)  # one more turn of the loop past it
    assert not lease.reported
    assert not [r for r in records(log_lines) if r.get("acquired_at") == line_of("quick")]


async def test_off_nothing_is_captured_or_reported(
    blockmon_config: dict[str, Any], blockmon_settings: Settings, log_lines: io.StringIO
) -> None:
    container = ApplicationContainer()
    container.config.from_dict(_config(blockmon_config, blockmon_settings, 0))
    async with Lifespan(container):
        engine = await container.postgres.engine()
        router = await container.postgres.router()
        assert guard_for(engine).leaks is None
        assert guard_for(router.readers[0]).leaks is None
        async with engine.connect() as conn:
            assert LEASE not in (await conn.get_raw_connection()).info
            await conn.execute(text("SELECT pg_sleep(1)"))  # five times the tests' threshold
        assert await leaks_counted(container) == 0
    assert not [r for r in records(log_lines) if "leak" in r["event"]]


async def _leak_calls(statements: Any) -> set[str]:
    """The functions of blockmon.postgres.leaks one Statements SELECT 1 calls."""
    await statements.scalar("SELECT 1")  # warm: connected, prepared
    profile = cProfile.Profile()
    profile.enable()
    await statements.scalar("SELECT 1")
    profile.disable()
    stats: dict[tuple[str, int, str], Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {name for file, _, name in stats if file == leaks.__file__}


async def test_off_a_checkout_makes_no_call_into_leak_detection(
    blockmon_container: ApplicationContainer, container: ApplicationContainer
) -> None:
    off = await _leak_calls(await blockmon_container.postgres.statements())
    assert off == set()  # an attribute read and a None test, no call
    on = await _leak_calls(await container.postgres.statements())
    assert {"checked_out", "_acquiring_frames", "returned"} <= on


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0.05", "must be 0 (off) or >= 0.1, got 0.05"),
        ("0.0999", "must be 0 (off) or >= 0.1, got 0.0999"),
        ("-1", "must be >= 0, got -1"),
        ("86401", "must be <= 86400, got 86401"),
        ("true", "must be a number, got True"),
        ("soon", "must be a number, got 'soon'"),
        (".inf", "must be a finite number, got inf"),
    ],
)
def test_a_bad_threshold_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, problem: str
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(f"postgres:\n  leak_detection_threshold: {value}\n")
    assert main(["config", "show", "-c", str(path)]) == 2
    line = f"blockmon: error: postgres.leak_detection_threshold: {problem}\n"
    assert capsys.readouterr() == ("", line)


@pytest.mark.parametrize("value", ["0", "0.1", "2", "86400"])
def test_thresholds_in_bounds_are_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(f"postgres:\n  leak_detection_threshold: {value}\n")
    assert main(["config", "show", "-c", str(path)]) == 0
    assert f"leak_detection_threshold: {float(value)}" in capsys.readouterr().out
