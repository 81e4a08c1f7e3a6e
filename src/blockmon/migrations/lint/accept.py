"""Reviewed findings accepted in the revision file itself, one rule and one reason per
comment (``# blockmon: accept RULE -- REASON``), never for the whole chain."""

from __future__ import annotations

import io
import tokenize

from blockmon.errors import UsageError
from blockmon.migrations.lint.rules import RULES

MARKER = "# blockmon: accept "


def acceptances(path: str) -> dict[str, str]:
    """Rule -> reason for every marker in the revision file at ``path``; a marker with an
    unknown rule or no reason is a usage error naming the file and line."""
    try:
        with open(path, encoding="utf-8") as source:
            text = source.read()
    except OSError as error:
        raise UsageError(f"lint: cannot read revision file {path}: {error.strerror}") from None
    accepted: dict[str, str] = {}
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    for token in tokens:
        if token.type != tokenize.COMMENT or not token.string.startswith(MARKER):
            continue
        rule, _, reason = token.string[len(MARKER) :].partition("--")
        rule, reason = rule.strip(), " ".join(reason.split())
        where = f"{path}:{token.start[0]}"
        if rule not in RULES:
            raise UsageError(f"lint: {where}: unknown rule {rule!r} in accept marker")
        if not reason:
            raise UsageError(f"lint: {where}: accept marker for {rule} gives no reason after --")
        accepted[rule] = reason
    return accepted
