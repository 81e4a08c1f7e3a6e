"""The public API is what ``import blockmon`` exports: every type a user receives (a
return value, a field, a provider's object), catches (every exception blockmon raises on
purpose) or annotates is there, under one name, and the version agrees everywhere."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

import blockmon
from blockmon.errors import BlockmonError

ROOT = Path(__file__).resolve().parents[1]
# Modules no user imports: the command's entry point (it runs the CLI), and the env and
# revisions Alembic loads by path (they run inside Alembic's context).
NOT_IMPORTED = re.compile(r"^blockmon\.(__main__|migrations\.env|migrations\.versions\..*)$")


def _types_in(annotation: Any, found: set[type]) -> None:
    if isinstance(annotation, type):
        found.add(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(origin, type):
        found.add(origin)
    for argument in typing.get_args(annotation):
        _types_in(argument, found)


def _signature_types(function: Any) -> set[type]:
    """The types named by ``function``'s annotations and by those of its overloads."""
    found: set[type] = set()
    for variant in [function, *typing.get_overloads(function)]:
        for annotation in typing.get_type_hints(variant).values():
            _types_in(annotation, found)
    return found


def _public_members(cls: type) -> set[type]:
    """The types in the public fields, properties and methods ``cls`` defines or inherits
    from blockmon (not from its bases elsewhere, such as pydantic's BaseModel)."""
    found: set[type] = set()
    for name, annotation in typing.get_type_hints(cls).items():
        if not name.startswith("_"):
            _types_in(annotation, found)
    for base in cls.__mro__:
        if not base.__module__.startswith("blockmon"):
            continue
        for name, member in vars(base).items():
            if name.startswith("_") and name not in {"__init__", "__call__", "__aenter__"}:
                continue
            if isinstance(member, property) and member.fget is not None:
                found |= _signature_types(member.fget)
            elif isinstance(member, (staticmethod, classmethod)):
                found |= _signature_types(member.__func__)
            elif inspect.isfunction(member):
                found |= _signature_types(member)
    return found


def _reachable_types() -> dict[type, str]:
    """Every blockmon type reachable from the exported names' signatures, with the path
    that reaches it."""
    reached: dict[type, str] = {}
    pending: list[tuple[Any, str]] = [
        (getattr(blockmon, name), name) for name in blockmon.__all__ if name != "__version__"
    ]
    while pending:
        value, path = pending.pop()
        if isinstance(value, type):
            if not value.__module__.startswith("blockmon") or value in reached:
                continue
            reached[value] = path
            named = _public_members(value)
        elif inspect.isfunction(value):
            named = _signature_types(value)
        else:
            raise AssertionError(f"{path}: neither a class nor a function")
        pending.extend((t, f"{path} -> {t.__qualname__}") for t in named)
    return reached


def test_every_type_in_a_public_signature_is_exported() -> None:
    reached = _reachable_types()
    missing = [
        f"{t.__module__}.{t.__qualname__} (via {path})"
        for t, path in reached.items()
        if getattr(blockmon, t.__name__, None) is not t or t.__name__ not in blockmon.__all__
    ]
    assert missing == []
    # the walk does reach through signatures: a row, a check's result, a settings section
    names = {t.__name__ for t in reached}
    assert {"Record", "StatementTransaction", "CheckResult", "PostgresSettings"} <= names


def test_every_exception_blockmon_raises_on_purpose_is_exported() -> None:
    for module in pkgutil.walk_packages(blockmon.__path__, "blockmon."):
        if not NOT_IMPORTED.match(module.name):
            importlib.import_module(module.name)
    errors: set[type] = set()
    pending: list[type] = [BlockmonError]
    while pending:
        error = pending.pop()
        errors.add(error)
        pending.extend(error.__subclasses__())
    from redis.exceptions import ConnectionError as RedisConnectionError

    errors |= {
        e for e in RedisConnectionError.__subclasses__() if e.__module__.startswith("blockmon")
    }
    missing = sorted(e.__qualname__ for e in errors if getattr(blockmon, e.__name__, None) is not e)
    assert missing == []
    assert {"EngineShutDown", "PoolTimeout", "Disabled"} <= {e.__name__ for e in errors}


def test_the_objects_of_the_documented_providers_are_exported() -> None:
    """docs/core.md's providers table: what ``await container.postgres.statements()`` and
    the others give has a name in blockmon (the engine and client are SQLAlchemy's and
    redis-py's)."""
    providers = (ROOT / "docs" / "core.md").read_text()
    for name in ("Transactions", "Statements", "Router", "Sessions", "Cache"):
        assert f"`blockmon.{name}`" in providers or f".{name}`" in providers, name
        assert name in blockmon.__all__
    for name in ("HealthChecker", "Readiness", "MonitoringApp"):
        assert name in blockmon.__all__


def test_all_names_resolve_once() -> None:
    assert sorted(set(blockmon.__all__)) == sorted(blockmon.__all__)
    assert dir(blockmon) == blockmon.__all__
    for name in blockmon.__all__:
        assert getattr(blockmon, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Transaction'"):
        _ = blockmon.Transaction  # type: ignore[attr-defined]


def test_the_version_agrees_everywhere() -> None:
    """pyproject.toml, ``blockmon.__version__``, the installed distribution (scripts/bootstrap
    reinstalls when pyproject.toml changes) and the newest release in CHANGELOG.md."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    releases = re.findall(
        r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$",
        (ROOT / "CHANGELOG.md").read_text(),
        flags=re.MULTILINE,
    )
    assert project["version"] == blockmon.__version__ == releases[0]
    assert importlib.metadata.version("blockmon") == blockmon.__version__
    assert "0.1.0" in releases  # the history is kept


def test_the_health_checkers_state_is_not_a_constructor_argument() -> None:
    from blockmon import HealthChecker

    parameters = inspect.signature(HealthChecker).parameters
    assert [p for p in parameters if p.startswith("_")] == []
    assert {"timeout", "cache_ttl", "interval", "thresholds", "groups"} <= set(parameters)
    with pytest.raises(TypeError, match="_checks"):
        HealthChecker(_checks={})  # type: ignore[call-arg]
    assert "_checks" not in repr(HealthChecker())
    first, second = HealthChecker(), HealthChecker()
    assert first != second and len({first, second}) == 2  # one object each, hashable
