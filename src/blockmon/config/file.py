"""Reads blockmon's settings from a YAML file and the environment.

Order of precedence, highest first: ``DATABASE_URL`` / ``REDIS_URL`` /
``BLOCKMON_LOG_LEVEL``, then the file (with ``${VAR}`` and ``${VAR:default}``
interpolated), then the defaults in `blockmon.config.settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from blockmon.config.settings import Settings, validate
from blockmon.errors import ConfigError

CONFIG_ENV = "BLOCKMON_CONFIG"
DEFAULT_FILE = "config.yml"

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<default>[^}]*))?\}")
_ENV_OVERRIDES = {
    "DATABASE_URL": ("postgres", "url"),
    "REDIS_URL": ("redis", "url"),
    "BLOCKMON_LOG_LEVEL": ("log", "level"),
}


def config_path(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The file to read: the explicit one, else ``$BLOCKMON_CONFIG``, else ./config.yml if present."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_mapping(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The raw settings mapping, interpolated and with environment overrides applied."""
    env = os.environ if environ is None else environ
    chosen = config_path(path, env)
    # Name the variable when the path came from it: the user may not remember setting it.
    label = f"{chosen} (from {CONFIG_ENV})" if chosen and not path and env.get(CONFIG_ENV) else None
    data: dict[str, Any] = {} if chosen is None else _read_yaml(chosen, label or str(chosen))
    data = _interpolate(data, env, [])
    for var, (section, key) in _ENV_OVERRIDES.items():
        value = env.get(var)
        if value:
            target = data.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = value.lower() if var == "BLOCKMON_LOG_LEVEL" else value
    return data


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load and validate; raises `ConfigError` with one line that names the setting."""
    return validate(Settings, load_mapping(path, environ))


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        # A FIFO or device would block the read (or never end): only regular files.
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ConfigError(f"{label}: not a regular file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read config file: {exc.strerror}") from None
    if not raw.strip():
        # Usually a truncated deploy or an empty mount, not a wish for all defaults.
        raise ConfigError(f"{label}: config file is empty (write {{}} to use the defaults)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings, got {type(data).__name__}")
    return data


def _interpolate(value: Any, env: Mapping[str, str], where: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, [*where, str(k)]) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, [*where, str(i)]) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in env:
            return env[name]
        if default is not None:
            return default
        setting = ".".join(where)
        raise ConfigError(f"{setting}: environment variable {name} is not set")

    result = _VAR.sub(substitute, value)
    # "${VAR:}" with nothing set means "not configured", not an empty string.
    return None if result == "" and _VAR.fullmatch(value) else result
