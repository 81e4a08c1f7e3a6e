"""Phrases a failed connection for a person: what failed, where, and after how long.

``TimeoutError`` has no message and ``socket.gaierror`` does not name the host it could
not resolve, so a bare ``f"{type(error).__name__}: {error}"`` says ``TimeoutError:``;
every connection failure blockmon reports goes through `connection_failure` instead."""

from __future__ import annotations

import socket

from blockmon.config.secrets import one_line, redact

_INVALID_CATALOG = "3D000"  # PostgreSQL's SQLSTATE for a database that does not exist


def connection_failure(
    error: BaseException,
    *,
    address: str,
    timeout: tuple[str, float] | None = None,
    doing: str = "connecting to",
) -> str:
    """``error`` as a line naming ``address`` and, for a timeout, what was being done,
    the setting that bounded it (if one did) and its value."""
    missing = missing_database(error)
    if missing is not None:
        return redact(one_line(f"{missing} on {address} (blockmon up creates it)", 200))
    if isinstance(error, socket.gaierror):
        reason = error.strerror or str(error)
        return f"cannot resolve host {address.rsplit(':', 1)[0]!r} ({reason})"
    if isinstance(error, TimeoutError) and not str(error):
        if timeout is None:
            return f"{doing} {address} timed out"
        setting, seconds = timeout
        why = f" ({setting})" if setting else ""
        return f"{doing} {address} timed out after {seconds:g}s{why}"
    return redact(one_line(f"{type(error).__name__}: {error}".rstrip(": "), 200))


def missing_database(error: BaseException) -> str | None:
    """The server's own ``database "x" does not exist`` (SQLSTATE 3D000), found in the
    chain SQLAlchemy wraps around asyncpg's error, else None."""
    seen: BaseException | None = error
    for _ in range(4):
        if seen is None:
            return None
        if getattr(seen, "sqlstate", None) == _INVALID_CATALOG:
            cause = seen.__cause__ if seen.__cause__ is not None else seen
            return str(cause).split("\n")[0]
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else seen.__cause__
    return None
