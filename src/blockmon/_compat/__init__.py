"""The one wall around our dependencies' private internals.

Where no public API gives a number (redis-py's pool counts) or the speed blockmon needs
(SQLAlchemy's dialect methods), blockmon reads private internals, and only in this
package: one module per dependency. Each checks once, at first use, that the internals look as expected; if they
do not, it logs one warning naming the version and uses the public API from then on
(slower, or with less detail, but correct). ``tests/test_compat.py`` fails when a private
access of these libraries appears anywhere else in ``src/blockmon``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version

import structlog

_log = structlog.get_logger("blockmon.compat")


class Layout:
    """Whether one dependency's internals are as blockmon expects: ``probe`` runs once."""

    def __init__(self, distribution: str, probe: Callable[[], bool]) -> None:
        self.distribution = distribution
        self.probe = probe
        self.checked: bool | None = None  # None until the first `ok()`

    def ok(self) -> bool:
        """True to use the internals; on the first False, one warning."""
        if self.checked is None:
            try:
                self.checked = bool(self.probe())
            except Exception:  # a missing attribute or a changed signature: not the layout
                self.checked = False
            if not self.checked:
                _log.warning(
                    f"{self.distribution} {version(self.distribution)}: internal layout "
                    "changed; using the public API (slower)",
                    dependency=self.distribution,
                    version=version(self.distribution),
                )
        return self.checked
