"""blockmon.cli.loop.run: uvloop when installed (the [speed] extra), asyncio otherwise."""

import asyncio
import sys

import pytest

from blockmon.cli.loop import run

try:
    import uvloop
except ImportError:  # the [speed] extra is optional
    uvloop = None


async def _loop_type() -> type:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


@pytest.mark.skipif(uvloop is None, reason="uvloop (the [speed] extra) is not installed")
def test_runs_on_uvloop_when_installed():
    assert run(_loop_type()) is uvloop.Loop


def test_falls_back_to_asyncio_without_uvloop(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    loop_type = run(_loop_type())
    assert loop_type.__module__.split(".")[0] == "asyncio"
    assert issubclass(loop_type, asyncio.BaseEventLoop)
