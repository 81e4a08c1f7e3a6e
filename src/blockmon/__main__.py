"""``python -m blockmon``: the same as the ``blockmon`` command."""

from blockmon.cli import run

run()
