"""Argument types shared by the commands: a bad value is refused by argparse, before
anything connects, with one line naming the argument."""

from __future__ import annotations

import argparse
import re

# Alembic's revision syntax: ids, head/heads/base, branch@rev, relative +N/-N or id+N,
# and FROM:TO ranges (offline only). Anything else makes Alembic assert or mis-split.
_ONE = r"(?:[A-Za-z0-9_]+@)?(?:[A-Za-z0-9_]+(?:[+-][0-9]+)?|[+-][0-9]+)"
_REVISION = re.compile(rf"{_ONE}(?::{_ONE})?")


def not_empty(text: str) -> str:
    """argparse type: an empty value would silently fall back to a default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def revision_name(text: str) -> str:
    """argparse type: reject what no Alembic revision can be, before connecting."""
    if not _REVISION.fullmatch(text):
        from blockmon.config.secrets import shown

        raise argparse.ArgumentTypeError(
            f"must be a revision id, head, base or a relative form like -1, got {shown(text)}"
        )
    return text


def positive_int(text: str) -> int:
    """argparse type: a count of processes or cores, 1 or more."""
    if not (text.strip().isdigit() and int(text) >= 1):
        from blockmon.config.secrets import shown

        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {shown(text)}")
    return int(text)
