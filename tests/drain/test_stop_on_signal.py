"""Once the server's drain has taken a signal, the command counts as stopping: a later
signal, while the Resources close, is ignored instead of cancelling the clean-up."""

from __future__ import annotations

import asyncio
import os
import signal

from blockmon.cli.signals import StopOnSignal


def run_with_a_signal(drained: bool) -> int:
    with StopOnSignal() as stop:

        async def main() -> int:
            if drained:
                stop.stopping(signal.SIGTERM)  # what serve() returned
            os.kill(os.getpid(), signal.SIGINT)  # while the Resources close
            await asyncio.sleep(0.5)  # the clean-up's work, cancelled by an unhandled signal
            return 7

        return stop.run(main())


def test_a_signal_after_the_drain_does_not_cut_the_clean_up_short() -> None:
    assert run_with_a_signal(drained=True) == 7  # ran to its end


def test_a_signal_before_any_drain_still_stops_the_command() -> None:
    assert run_with_a_signal(drained=False) == 0  # cancelled: exit 0
