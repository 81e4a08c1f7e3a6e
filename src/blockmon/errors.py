"""Exceptions that blockmon raises on purpose, each with a message fit for a user."""

from __future__ import annotations


class BlockmonError(Exception):
    """Base class: the message is one line, names what is wrong, and holds no secret."""


class ConfigError(BlockmonError):
    """A setting is missing, malformed or out of range; the CLI exits 2 on it."""


class UsageError(BlockmonError):
    """A command was called with arguments it cannot take; the CLI exits 2 on it."""
