"""The fault tools themselves: the proxy's modes do what the scenarios rely on, and the
leak guard catches what it is meant to catch."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings

import pytest

from blockmon.testing.proxy import FaultProxy, Mode
from faults.guards import Leaks, collect_leaks


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_proxy_modes() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with FaultProxy("127.0.0.1", port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"a")
            assert await asyncio.wait_for(reader.read(1), 5) == b"a"

            proxy.latency = 0.2
            started = time.monotonic()
            writer.write(b"b")
            assert await asyncio.wait_for(reader.read(1), 5) == b"b"
            assert time.monotonic() - started >= 0.4
            proxy.latency = 0.0

            proxy.mode = Mode.BLACKHOLE
            writer.write(b"c")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.5)
            proxy.mode = Mode.PASS  # held bytes flow again, like a healed partition
            assert await asyncio.wait_for(reader.read(1), 5) == b"c"

            proxy.cut()
            assert await asyncio.wait_for(reader.read(1), 5) == b""
            writer.close()

            proxy.mode = Mode.REJECT
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            assert await asyncio.wait_for(reader.read(1), 5) == b""
            writer.close()
            assert proxy.connections == 0
    finally:
        server.close()
        await server.wait_closed()


def test_guard_catches_resource_warnings_and_asyncio_complaints(no_leaks: Leaks) -> None:
    with collect_leaks() as leaks:
        warnings.warn("unclosed transport", ResourceWarning, stacklevel=1)
        logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        gc.collect()
    assert len(leaks.problems()) == 2
    no_leaks.logs.clear()  # the test's own guard saw the planted log line too
