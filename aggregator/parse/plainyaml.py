"""A fast path for the plain YAML that record files are made of.

Record front matter is machine-written: block mappings and sequences, one scalar per
line, double-quoted strings. PyYAML spends most of its time on such text calling
Python code for every node. This module reads exactly that subset in one pass over
the lines and gives the same values PyYAML's safe loader gives (plain scalars are
resolved with PyYAML's own implicit resolvers and constructors). Anything outside the
subset (flow collections, anchors, tags, block or multi-line scalars, comments after
values, tabs, unusual characters or escapes, deep nesting) raises NotPlain, and the
caller uses the full loader, which also reports errors.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

MAX_DEPTH = 6  # nesting beyond this (never seen in records) goes to the full loader

# Characters the fast path accepts anywhere: printable, no tab, CR or Unicode line breaks.
_SAFE_TEXT = re.compile(
    "[\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)
# A line that is neither blank nor a comment, right-trimmed: its indent, then either the
# key and the value (empty after a bare `key:`) or, for any other line, its content.
_LINE = re.compile(
    r"^( *)(?:([A-Za-z_][A-Za-z0-9_-]*):(?: +([^ \n](?:[^\n]*[^ \n])?))?"
    r"|([^ #\n](?:[^\n]*[^ \n])?)) *$",
    re.MULTILINE,
)
_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?: +(.*))?$")
_DOUBLE_QUOTED = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"')
_SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))")
_ESCAPES = {
    "0": "\0", "a": "\x07", "b": "\x08", "t": "\t", "n": "\n", "v": "\x0b", "f": "\x0c",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_NOT_PLAIN_START = frozenset(",[]{}#&*!|>'\"%@`")
_TYPED_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp")
)
_CONSTRUCTOR = SafeConstructor()  # its scalar constructors keep no state


class NotPlain(Exception):
    """The text is outside the subset this module reads."""


def load_plain_yaml(text: str) -> Any:
    """The value of `text`, exactly as yaml.load(text, CSafeLoader) would give it."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if not _SAFE_TEXT.fullmatch(text):
        raise NotPlain
    lines = _LINE.findall(text)
    if not lines:
        raise NotPlain
    reader = _Reader(lines)
    value = reader.block(len(lines[0][0]), 1)
    if reader.position != len(lines):
        raise NotPlain
    return value


Line = tuple[str, str, str, str]  # indent, key, value, content (see _LINE)


class _Reader:
    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines
        self.position = 0

    def block(self, indent: int, depth: int) -> Any:
        """A block mapping or sequence whose first line is at `indent`."""
        if depth > MAX_DEPTH:
            raise NotPlain
        content = self.lines[self.position][3]
        if content == "-" or content.startswith("- "):
            return self.sequence(indent, depth)
        return self.mapping(indent, depth)

    def mapping(
        self, indent: int, depth: int, first: tuple[str, str | None] | None = None
    ) -> dict[Any, Any]:
        """A block mapping at `indent`; `first` is its first key and value when they
        follow a sequence item's dash."""
        lines = self.lines
        end = len(lines)
        result: dict[Any, Any] = {}
        if first is not None:
            name, rest = first
            self.position += 1
            result[_plain(name)] = self.nested(indent, depth) if rest is None else _scalar(rest)
        position = self.position
        while position < end:
            line_indent, name, rest, _ = lines[position]
            if len(line_indent) != indent:
                if len(line_indent) < indent:
                    break
                raise NotPlain
            if not name:
                raise NotPlain
            position += 1
            if rest:
                result[_plain(name)] = _scalar(rest)
            else:
                self.position = position
                result[_plain(name)] = self.nested(indent, depth)
                position = self.position
        self.position = position
        return result

    def nested(self, indent: int, depth: int) -> Any:
        """The value of `key:` with nothing after it: a deeper block, a sequence at the
        key's own indent, or null."""
        if self.position < len(self.lines):
            line_indent, _, _, content = self.lines[self.position]
            if len(line_indent) > indent:
                return self.block(len(line_indent), depth + 1)
            if len(line_indent) == indent and (content == "-" or content.startswith("- ")):
                return self.sequence(indent, depth + 1)
        return _plain("")

    def sequence(self, indent: int, depth: int) -> list[Any]:
        lines = self.lines
        items: list[Any] = []
        while self.position < len(lines):
            line_indent, _, _, content = lines[self.position]
            if len(line_indent) < indent:
                break
            if len(line_indent) > indent or content == "-":
                raise NotPlain
            if not content.startswith("- "):
                break  # the mapping this sequence belongs to goes on at this indent
            body = content[2:].lstrip(" ")
            if body == "-" or body.startswith("- "):
                raise NotPlain
            if key := _KEY.match(body):
                item_indent = indent + len(content) - len(body)
                items.append(self.mapping(item_indent, depth + 1, key.groups()))
            else:
                items.append(_scalar(body))
                self.position += 1
        return items


def _scalar(text: str) -> Any:
    """A scalar that fits on its line: double-quoted, single-quoted or plain."""
    first = text[0]
    if first == '"':
        value = text[1:-1]
        if text[-1] == '"' and len(text) > 1 and '"' not in value and "\\" not in value:
            return value  # the common case: nothing escaped
        match = _DOUBLE_QUOTED.fullmatch(text)
        if match is None:
            raise NotPlain
        value = match.group(1)
        return _ESCAPE.sub(_unescape, value) if "\\" in value else value
    if first == "'":
        match = _SINGLE_QUOTED.fullmatch(text)
        if match is None:
            raise NotPlain
        return match.group(1).replace("''", "'")
    if first in _NOT_PLAIN_START or (first in "-?:" and (len(text) == 1 or text[1] == " ")):
        raise NotPlain
    if ": " in text or " #" in text or text.endswith(":"):
        raise NotPlain
    return _plain(text)


def _unescape(match: re.Match[str]) -> str:
    simple = match.group(4)
    if simple is not None:
        if simple not in _ESCAPES:
            raise NotPlain
        return _ESCAPES[simple]
    code = int(match.group(1) or match.group(2) or match.group(3), 16)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        raise NotPlain
    return chr(code)


@functools.lru_cache(maxsize=1 << 14)  # keys and many values repeat from file to file
def _plain(text: str) -> Any:
    """A plain scalar, typed as PyYAML types it (null, bool, int, float, timestamp, str)."""
    resolvers = Resolver.yaml_implicit_resolvers
    candidates = resolvers.get(text[:1], ())
    if None in resolvers:  # resolvers for any first character (none by default)
        candidates = [*candidates, *resolvers[None]]
    for tag, pattern in candidates:
        if pattern.match(text):
            if tag not in _TYPED_TAGS:
                raise NotPlain
            return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, ScalarNode(tag, text))
    return text
