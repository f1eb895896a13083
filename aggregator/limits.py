"""Resource limits on untrusted input, shared by local files and remote responses.

Every check raises `LimitExceeded` (a RecordError), whose message names the limit, the
value found and the `[limits]` key that sets it, so a breach is reported like any other
bad input: with the file or URL it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from aggregator.errors import RecordError

T = TypeVar("T")


class LimitExceeded(RecordError):
    """Input larger, deeper or more numerous than a configured limit allows."""

    def __init__(self, what: str, key: str, limit: int, *, found: int | None = None,
                 line: int | None = None) -> None:  # fmt: skip
        self.key = key
        self.limit = limit
        shown = f"{what} ({found:,})" if found is not None else what
        super().__init__(None, f"{shown} is over the limit of {limit:,} ({key})", line=line)


def check_size(size: int, limit: int, key: str = "[limits] max_file_bytes") -> None:
    """Raise before reading when a file (or a declared Content-Length) is too large."""
    if size > limit:
        raise LimitExceeded("size in bytes", key, limit, found=size)


def read_capped(chunks: Iterable[bytes], limit: int, key: str = "[limits] max_file_bytes") -> bytes:
    """Join `chunks` (a file's reads, an HTTP body's iter_bytes()) but stop past `limit`.

    Reading stops at the first chunk that crosses the limit, so an endless or
    decompression-bomb body costs at most `limit` plus one chunk.
    """
    parts: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise LimitExceeded("size in bytes (at least)", key, limit, found=total)
        parts.append(chunk)
    return b"".join(parts)


def nesting_depth(value: Any, limit: int, key: str) -> int:
    """Depth of nested lists and mappings in `value` (a scalar is 0); raise past `limit`.

    For trees, as JSON and alias-free YAML give (YAML with aliases is measured while it
    is composed, see parse/safeyaml.py). The walk stops at `limit`, so its recursion is bounded.
    """
    if not isinstance(value, dict | list):
        return 0
    return _height(value, 1, limit, key)


def _height(node: dict[Any, Any] | list[Any], depth: int, limit: int, key: str) -> int:
    deepest = depth
    for child in node.values() if isinstance(node, dict) else node:
        if isinstance(child, dict | list):
            if depth >= limit:
                raise LimitExceeded("nesting depth", key, limit, found=depth + 1)
            deepest = max(deepest, _height(child, depth + 1, limit, key))
    return deepest


def take_items(items: Sequence[T], limit: int, already: int = 0) -> tuple[Sequence[T], int]:
    """The items that still fit when `already` were taken from the same source, and how
    many were left out. Callers report the left-out count as a warning."""
    room = max(limit - already, 0)
    if len(items) <= room:
        return items, 0
    return items[:room], len(items) - room
