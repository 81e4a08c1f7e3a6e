"""Renamed public names keep working for one release and say so, in one wording: a
`DeprecationWarning` that points at the caller's line and names the replacement."""

from __future__ import annotations

import warnings

SINCE = "0.2.0"
REMOVED_IN = "0.3.0"


def deprecated(old: str, new: str, *, stacklevel: int = 2) -> None:
    """Warn that ``old`` is deprecated in favour of ``new``. ``stacklevel`` counts from
    the caller of this function, as `warnings.warn` does: 2 (the default) names the line
    that called the function which calls this one."""
    warnings.warn(
        f"{old} is deprecated since blockmon {SINCE} and will be removed in {REMOVED_IN}; "
        f"use {new}",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
