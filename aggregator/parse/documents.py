"""Turn the bytes of a record document into plain mappings (one per record).

Understands Markdown with YAML front matter, YAML and JSON documents holding one
record, a list of records, or a collection page (`value`, `news` or `items`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from aggregator.config import LimitsConfig
from aggregator.errors import RecordError
from aggregator.limits import LimitExceeded, nesting_depth
from aggregator.parse.plainyaml import MAX_DEPTH as PLAIN_MAX_DEPTH
from aggregator.parse.plainyaml import NotPlain, load_plain_yaml
from aggregator.parse.safeyaml import safe_load

# libyaml's C loader is several times faster; both are safe (plain data only).
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_LIMITS = LimitsConfig()
JSON_DEPTH_KEY = "[limits] max_yaml_depth"  # one nesting cap for YAML and JSON

COLLECTION_KEYS = ("value", "news", "items")
_FENCE = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
# The closing fence with the line break before it: a leading literal lets the search
# jump from line break to line break instead of trying every character.
_CLOSE = re.compile(r"\n(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)


class NotARecord(RecordError):
    """A Markdown file without front matter: a page, not a record (as in Jekyll)."""

    def __init__(self) -> None:
        super().__init__(None, "no YAML front matter, so not a record", line=1)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record's mapping as found in a document, with the line it starts on."""

    data: dict[str, Any]
    line: int | None
    index: int | None = None  # position in a list or collection, when there was one


def bytes_to_text(data: bytes) -> str:
    """UTF-8 with or without BOM; CRLF is left to the parsers, which accept it, and a
    file with only CR line breaks (classic Mac OS) is read as if they were LF."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(data[:8192]):
        raise RecordError(None, "UTF-16 text; only UTF-8 is read (save the file as UTF-8)")
    if b"\x00" in data[:8192]:
        raise RecordError(None, "binary file (NUL bytes), not a text record")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecordError(None, f"not valid UTF-8 (byte {exc.start})", line=line) from None
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
    return text


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 without a byte order mark: ASCII text with a NUL beside every character."""
    if len(head) < 4 or b"\x00" not in head:
        return False
    even, odd = head[0::2], head[1::2]
    return even.count(0) * 4 >= len(even) * 3 or odd.count(0) * 4 >= len(odd) * 3


def split_front_matter(text: str) -> tuple[str, int]:
    """Return the YAML between the `---` fences and the line number it starts on."""
    if not _FENCE.match(text):
        raise NotARecord
    newline = text.find("\n")
    close = None if newline < 0 else _CLOSE.search(text, newline)
    if close is None:
        raise RecordError(None, "front matter is not closed by a '---' line", line=1)
    return text[newline + 1 : close.start() + 1], 2


def load_yaml(text: str, first_line: int = 1, limits: LimitsConfig = DEFAULT_LIMITS) -> Any:
    """Safe YAML (plain data only) within the nesting and alias limits."""
    try:
        # The plain, machine-written case, several times faster. It takes no aliases
        # and no nesting deeper than PLAIN_MAX_DEPTH, so it is within the limits.
        if limits.max_yaml_depth >= PLAIN_MAX_DEPTH:
            return load_plain_yaml(text)
    except NotPlain:
        pass
    except (ValueError, OverflowError) as exc:
        raise RecordError(None, f"invalid YAML value: {exc}") from None
    try:
        return safe_load(text, max_depth=limits.max_yaml_depth, max_aliases=limits.max_yaml_aliases)
    except LimitExceeded as exc:
        if exc.line is not None:
            exc.line += first_line - 1
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + first_line
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise RecordError(None, f"invalid YAML: {reason}", line=line) from None
    except yaml.YAMLError as exc:
        raise RecordError(None, f"invalid YAML: {exc}") from None
    except (ValueError, OverflowError) as exc:
        # A value the constructors cannot build: 2023-13-45, an integer of 5000 digits.
        raise RecordError(None, f"invalid YAML value: {exc}") from None
    except RecursionError:
        raise RecordError(None, "invalid YAML: nested too deeply") from None


def load_json(text: str, limits: LimitsConfig = DEFAULT_LIMITS) -> Any:
    """JSON within the nesting limit (the same cap as YAML's)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(None, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise RecordError(None, f"invalid JSON value: {exc}") from None
    except RecursionError:
        raise LimitExceeded("nesting depth", JSON_DEPTH_KEY, limits.max_yaml_depth) from None
    nesting_depth(data, limits.max_yaml_depth, JSON_DEPTH_KEY)
    return data


def raw_records(value: Any, line: int | None = None) -> list[RawRecord]:
    """Find the records in a parsed document: one mapping, a list, or a collection page."""
    if isinstance(value, dict):
        for key in COLLECTION_KEYS:
            items = value.get(key)
            if isinstance(items, list) and "title" not in value:
                return _list_records(items)
        return [RawRecord(value, line)]
    if isinstance(value, list):
        return _list_records(value)
    if value is None:
        raise RecordError(None, "document is empty", line=line)
    raise RecordError(None, f"expected a record (a mapping), got {type(value).__name__}", line=line)


def _list_records(items: list[Any]) -> list[RawRecord]:
    return [RawRecord(item, None, index) for index, item in enumerate(items)]


def parse_document(text: str, kind: str, limits: LimitsConfig = DEFAULT_LIMITS) -> list[RawRecord]:
    """`kind` is "markdown", "yaml" or "json"."""
    if kind == "markdown":
        front, first_line = split_front_matter(text)
        return raw_records(load_yaml(front, first_line, limits), line=1)
    if kind == "yaml":
        return raw_records(load_yaml(text, 1, limits), line=1)
    return raw_records(load_json(text, limits), line=1)


def kind_for_suffix(suffix: str) -> str:
    return {".yaml": "yaml", ".yml": "yaml", ".json": "json"}.get(suffix.lower(), "markdown")


def field_line(text: str, field: str, start: int = 1) -> int | None:
    """The line where `field:` is first set, searching from line `start` (1-based)."""
    match = re.compile(rf"^\s*-?\s*[\"']?{re.escape(field)}[\"']?\s*:", re.MULTILINE)
    offset = 0
    for _ in range(start - 1):
        offset = text.find("\n", offset) + 1
        if offset == 0:
            return None
    found = match.search(text, offset)
    return None if found is None else text.count("\n", 0, found.start()) + 1
