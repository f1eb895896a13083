"""Counted nouns for messages and pages: "1 story", "2 stories", "0 duplicates"."""

from __future__ import annotations


def plural(count: int, singular: str, many: str | None = None) -> str:
    """`count` and the noun agreeing with it (`many` defaults to `singular` + "s")."""
    return f"{count} {singular if count == 1 else many or singular + 's'}"
