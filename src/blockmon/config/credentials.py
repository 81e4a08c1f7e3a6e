"""Passwords fetched for each new connection, from a file, a command or a callable named
in the settings, so that a rotated password or a short-lived token (RDS/Cloud SQL IAM,
a Vault lease) needs no restart. Every value fetched is registered as a secret, so the
redaction of logs and errors masks it; a command's output is never logged."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import shlex
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

from blockmon.config.secrets import register_secrets
from blockmon.errors import CredentialError

PasswordSource = Callable[[], Awaitable[str]]


def check_command(command: str) -> str:
    """The command splits like a shell line and its program exists (for the settings)."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise ValueError(f"cannot be split into arguments ({error})") from None
    if not argv:
        raise ValueError("must not be empty")
    if shutil.which(argv[0]) is None:
        raise ValueError(f"program {argv[0]!r} not found")
    return command


def load_provider(target: str) -> Callable[[], Any]:
    """``module:callable`` (a dotted attribute after the colon), imported."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"must be 'module:callable', got {target!r}")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {target!r} ({type(error).__name__})") from None
    if not callable(found):
        raise ValueError(f"{target!r} is not callable")
    provider: Callable[[], Any] = found
    return provider


def password_source(
    setting: str,
    *,
    file: str | None,
    command: str | None,
    provider: str | None,
    timeout: float,
) -> PasswordSource | None:
    """An async callable giving the current password, or None when none is configured.
    ``setting`` is the section (``postgres``) that errors name."""
    if file is not None:
        return _fetching(lambda: _read(setting, file))
    if command is not None:
        return _fetching(lambda: _run(setting, command, timeout))
    if provider is not None:
        call = load_provider(provider)
        return _fetching(lambda: _call(setting, provider, call))
    return None


def _fetching(fetch: Callable[[], Awaitable[str]]) -> PasswordSource:
    async def source() -> str:
        password = await fetch()
        register_secrets([password])
        return password

    return source


def _contents(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read().rstrip("\r\n")


async def _read(setting: str, path: str) -> str:
    try:
        password = await asyncio.to_thread(_contents, path)  # a network file system may stall
    except OSError as error:
        raise CredentialError(
            f"{setting}.password_file: cannot read {path}: {os.strerror(error.errno or 0)}"
        ) from None
    if not password:
        raise CredentialError(f"{setting}.password_file: {path} is empty")
    return password


async def _run(setting: str, command: str, timeout: float) -> str:
    name = f"{setting}.password_command"
    try:
        process = await asyncio.create_subprocess_exec(
            *shlex.split(command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,  # may echo the secret: never read, never logged
        )
    except OSError as error:
        raise CredentialError(f"{name}: cannot run: {os.strerror(error.errno or 0)}") from None
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CredentialError(f"{name}: no answer within {timeout:g} s") from None
    if process.returncode != 0:
        raise CredentialError(f"{name}: exited with {process.returncode}")
    password = out.decode("utf-8", "replace").rstrip("\r\n")
    if not password:
        raise CredentialError(f"{name}: printed nothing")
    return password


async def _call(setting: str, target: str, call: Callable[[], Any]) -> str:
    value = call()
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, str) or not value:
        raise CredentialError(
            f"{setting}.password_provider: {target} must return a non-empty str, "
            f"got {type(value).__name__}"
        )
    return value


def source_for(section: str, settings: Any) -> PasswordSource | None:
    """The password source a ``postgres`` or ``redis`` settings section configures."""
    return password_source(
        section,
        file=settings.password_file,
        command=settings.password_command,
        provider=settings.password_provider,
        timeout=settings.password_command_timeout,
    )
