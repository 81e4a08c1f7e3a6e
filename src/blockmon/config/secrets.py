"""Keeps secrets out of every string blockmon shows: logs, errors, health bodies, reprs,
and settings displayed (`masked_settings`).

Two nets: known secret values (registered when settings load) are replaced wherever
they appear, and anything shaped like a credential (``user:pass@`` in a URL,
``password=...`` in a query string or DSN) is masked even when nobody registered it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
SHOWN_LIMIT = 80  # characters of a value an error shows
LINE_LIMIT = 400  # characters of an error line

# The password runs to the LAST ``@`` before the host: a raw ``@`` in it stays masked.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^/\s]*)@"
)
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|sslpassword|auth)\b\s*[=:]\s*)(?P<q>['\"]?)(?P<value>[^'\"&\s,;)]+)",
    re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so that `redact` masks them wherever they appear."""
    global _secrets
    fresh = {v for v in values if v and len(v) >= 3}
    if not fresh - _secrets:
        return
    with _lock:
        _secrets = _secrets | fresh


def redact(text: str) -> str:
    """Return ``text`` with every known secret and credential-shaped value masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "@" in text:
        text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    if "=" in text or ":" in text:
        text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['q']}{MASK}", text)
    return text


def shown(value: Any, limit: int = SHOWN_LIMIT) -> str:
    """How an error shows a value: its repr, redacted, cut to ``limit`` characters.

    The one function every error formatter uses, so a 20 MB value or a password pasted
    into the wrong setting never reaches a terminal or a log whole."""
    long = isinstance(value, str) and len(value) > 4 * limit
    text = redact(repr(value[: 4 * limit] if long else value))
    if not long and len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[: limit - 3]}...{size}"


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """An error message as one line of at most ``limit`` characters (its values were
    already put through `shown`; the names of settings must stay readable)."""
    line = " ".join(text[: 4 * limit].split())
    return line if len(line) <= limit else f"{line[: limit - 3]}..."


def redact_value(value: Any) -> Any:
    """Redact strings inside plain data (dicts, lists, tuples) and the str() of anything else."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def masked_settings(model: BaseModel) -> dict[str, Any]:
    """Passwords become ``***``; URLs keep their shape with credentials masked."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out[name] = masked_settings(value)
        elif isinstance(value, SecretStr):
            out[name] = redact(value.get_secret_value()) if "url" in name else MASK
        elif isinstance(value, list):
            out[name] = [_masked_item(item) for item in value]
        else:
            out[name] = redact(value) if isinstance(value, str) else value
    return out


def _masked_item(item: Any) -> Any:
    if isinstance(item, SecretStr):
        return redact(item.get_secret_value())
    return redact(item) if isinstance(item, str) else item
