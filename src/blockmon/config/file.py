"""Reads blockmon's settings from a YAML file and the environment.

Order of precedence, highest first: ``DATABASE_URL`` / ``REDIS_URL`` /
``MIGRATIONS_DATABASE_URL`` / ``BLOCKMON_LOG_LEVEL`` / ``PROMETHEUS_MULTIPROC_DIR``, then
the file (with ``${VAR}`` and ``${VAR:default}`` interpolated), then the defaults in
`blockmon.config.settings`.
The file is bounded (size, values, depth) before anything is built from it, so no
input can take more than milliseconds or more memory than the file's size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from blockmon.config.secrets import one_line, redact, shown
from blockmon.config.settings import Settings, validate
from blockmon.errors import ConfigError

CONFIG_ENV = "BLOCKMON_CONFIG"
DEFAULT_FILE = "config.yml"

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<default>[^}]*))?\}")
MAX_BYTES = 1_000_000  # a config file is a few kB; more is a mistake or an attack
MAX_VALUES = 10_000  # values in the file, an alias counted each time it is used
MAX_DEPTH = 20  # levels of nesting, through aliases too
_ENV_OVERRIDES = {
    "DATABASE_URL": ("postgres", "url"),
    "REDIS_URL": ("redis", "url"),
    "MIGRATIONS_DATABASE_URL": ("migrations", "url"),
    "BLOCKMON_LOG_LEVEL": ("log", "level"),
    "PROMETHEUS_MULTIPROC_DIR": ("monitoring", "multiprocess_dir"),
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
    data = _interpolate(data, env, [], {})
    for var, (section, key) in _ENV_OVERRIDES.items():
        value = env.get(var)
        target = data.get(section, {})
        if value and isinstance(target, dict):
            # A copy: the section may be shared with another through a YAML alias.
            data[section] = {**target, key: value.lower() if var == "BLOCKMON_LOG_LEVEL" else value}
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
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read config file: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{label}: config file is larger than {MAX_BYTES} bytes")
    if not raw.strip():
        # Usually a truncated deploy or an empty mount, not a wish for all defaults.
        raise ConfigError(f"{label}: config file is empty (write {{}} to use the defaults)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    data = _parse(text, label)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must be a mapping of settings, got {type(data).__name__}")
    return data


def _parse(text: str, label: str) -> Any:
    """PyYAML's safe loader, after `_check_bounds`, refusing duplicate keys."""
    try:
        _check_bounds(text, label)
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise ConfigError(
            f"{label}{where}: invalid YAML: {redact(one_line(problem, 200))}"
        ) from None
    except (ValueError, OverflowError) as exc:  # e.g. 2024-02-30 as a date, a 5000-digit int
        raise ConfigError(
            f"{label}: invalid YAML value: {redact(one_line(str(exc), 200))}"
        ) from None


def _check_bounds(text: str, label: str) -> None:
    """Count values and depth from the event stream (iterative, shares nothing), with
    an alias worth what its anchor holds: a "billion laughs" stops after a few events."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) it expands to
    stack: list[list[Any]] = []  # open collections: [values, deepest child, anchor]
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([1, 0, event.anchor])
            size, depth = 1, 0
        elif isinstance(event, yaml.CollectionEndEvent):
            size, deepest, anchor = stack.pop()
            depth, total = deepest + 1, total - size  # counted as its parts arrived
            if anchor:
                anchors[anchor] = (size, depth)
        elif isinstance(event, yaml.AliasEvent):
            if any(entry[2] == event.anchor for entry in stack):
                where = f"{label}:{event.start_mark.line + 1}" if event.start_mark else label
                raise ConfigError(f"{where}: alias *{event.anchor} is inside its own anchor")
            size, depth = anchors.get(event.anchor or "", (1, 1))
        elif isinstance(event, yaml.ScalarEvent):
            size, depth = 1, 1
            if event.anchor:
                anchors[event.anchor] = (1, 1)
        else:
            continue
        total += size
        line = f"{label}:{event.start_mark.line + 1}" if event.start_mark else label
        if total > MAX_VALUES:
            raise ConfigError(
                f"{line}: more than {MAX_VALUES} values (an alias counts as what it repeats)"
            )
        if len(stack) + depth > MAX_DEPTH:
            raise ConfigError(f"{line}: nested deeper than {MAX_DEPTH} levels")
        if stack and not isinstance(event, yaml.CollectionStartEvent):
            stack[-1][0] += size
            stack[-1][1] = max(stack[-1][1], depth)


class _StrictLoader(yaml.SafeLoader):
    """A key given twice is an error, not a silent replacement of the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults", which explicit keys may override
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.get(key)
            except TypeError:
                continue  # unhashable: the base class says so
            if line is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {shown(key)} (first on line {line + 1})",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _interpolate(value: Any, env: Mapping[str, str], where: list[str], done: dict[int, Any]) -> Any:
    """``${VAR}`` substituted; a node shared through an alias is walked (and built) once."""
    if isinstance(value, dict | list):
        if id(value) not in done:
            if isinstance(value, dict):
                items = value.items()
                done[id(value)] = {
                    k: _interpolate(v, env, [*where, str(k)], done) for k, v in items
                }
            else:
                done[id(value)] = [
                    _interpolate(v, env, [*where, str(i)], done) for i, v in enumerate(value)
                ]
        return done[id(value)]
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
