"""Helpers for the monitoring tests: containers with overrides, connection sections for a
port, ``blockmon serve`` as a process, and a listener that accepts and never answers."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from dependency_injector import providers
from pydantic import SecretStr

from blockmon.containers import ApplicationContainer
from blockmon.lifespan import Lifespan
from blockmon.testing.servers import free_port

__all__ = [
    "WAIT",
    "at",
    "black_hole",
    "free_port",
    "http",
    "merged",
    "plain",
    "running",
    "serving",
]

WAIT = 60.0  # generous bound for anything a server does on its own


def at(port: int) -> dict[str, Any]:
    """A connection section for 127.0.0.1:``port`` that replaces the run's own (which
    may be a URL, e.g. a Unix socket of an embedded server) and keeps its other settings."""
    return {"url": None, "host": "127.0.0.1", "port": port}


def merged(config: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out


def plain(value: Any) -> Any:
    """Configuration data with SecretStr unwrapped (for writing YAML files)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@contextlib.asynccontextmanager
async def running(config: dict[str, Any], *, schema_probe: bool = True) -> AsyncIterator[Any]:
    """A started container; ``schema_probe=False`` for a database without migrations
    (a throwaway server's), whose schema would otherwise turn the check to warn."""
    container = ApplicationContainer()
    container.config.from_dict(config)
    if not schema_probe:
        container.monitoring.schema_probe.override(providers.Object(None))
    async with Lifespan(container):
        yield container


@contextlib.asynccontextmanager
async def http(container: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = await container.monitoring.app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitor") as client:
        yield client


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[int]:
    """A port that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()
        await server.wait_closed()


@contextlib.contextmanager
def serving(tmp_path: Path, config: dict[str, Any], logs: list[str]) -> Iterator[int]:
    """``blockmon serve`` as a process; its stderr lines land in ``logs`` as they come."""
    port = free_port()
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(plain(merged(config, log={"level": "warning"}))))
    process = subprocess.Popen(
        [sys.executable, "-m", "blockmon", "serve", "-c", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    reader = threading.Thread(target=lambda: logs.extend(process.stderr), daemon=True)
    reader.start()
    try:
        line = process.stdout.readline()
        assert "monitoring on" in line, line
        yield port
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0, logs
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        reader.join(WAIT)
