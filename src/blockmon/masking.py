"""Settings as plain data with every secret masked, for display."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from blockmon.redaction import MASK, redact


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
