"""The filter patterns of the config: words, or `/a regular expression/`.

Apart from aggregator.filters so that the config can check them without importing the
stages that use them.
"""

from __future__ import annotations

import re


def pattern_error(pattern: str) -> str | None:
    """Why `pattern` is not usable, or None."""
    if not pattern.strip():
        return "expected a non-empty pattern"
    try:
        compile_pattern(pattern)
    except re.error as exc:
        return f"not a valid regular expression {pattern!r}: {exc}"
    return None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        return re.compile(pattern[1:-1], re.IGNORECASE)
    words = r"\s+".join(re.escape(word) for word in pattern.split())
    # Whole words: not inside a longer word, wherever punctuation stands around them.
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
