"""An in-process asyncio TCP proxy that injects network faults between a client and a server.

Modes switch at run time: ``pass`` forwards bytes, ``blackhole`` accepts connections
but forwards nothing in either direction until healed (like a partition: the bytes
are held, not lost, and flow again on heal), ``reject`` closes new connections at
once (like a port with nothing behind it). ``cut()`` drops every open connection;
``latency`` delays every chunk in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from types import TracebackType


class Mode(enum.Enum):
    PASS = "pass"
    BLACKHOLE = "blackhole"
    REJECT = "reject"


_CHUNK = 65536


class FaultProxy:
    """Listens on 127.0.0.1 (a free port unless given) and forwards to ``upstream``."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self.latency = 0.0
        self._mode = Mode.PASS
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self._mode = mode
        if mode is Mode.BLACKHOLE:
            self._flowing.clear()
        else:
            self._flowing.set()

    @property
    def connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Drop every open connection (both sides see a reset/EOF); new ones still follow ``mode``."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, drop every connection and wait (bounded) for the links to end."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._links):
            task.cancel()
        if self._links:
            await asyncio.wait(list(self._links), timeout=timeout)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout)
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self._mode is Mode.REJECT:
                return
            await self._flowing.wait()
            up_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(upstream_writer)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(reader, upstream_writer))
                group.create_task(self._pump(up_reader, writer))
        except (OSError, ExceptionGroup):
            pass
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()
            self._links.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            await self._flowing.wait()
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        # One side finished: end the whole link so neither end waits on a half-open socket.
        raise ConnectionResetError("peer closed")
