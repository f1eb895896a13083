"""Safe YAML loading with caps on nesting depth and alias expansion.

PyYAML's safe loaders already refuse unknown tags (`!!python/object`) and share
aliased nodes instead of copying them, but the data they return is only as small as
it looks: a "billion laughs" document (aliases of aliases of lists) is a few hundred
bytes that anything walking the result expands exponentially. We count while the
document is composed, before anything is built:

- depth: nested sequences and mappings, counting through aliases (an alias to a deep
  node makes its place that deep);
- aliases: every alias use as the document would be expanded, so an alias inside an
  aliased node counts once for each time that node is used. A bomb therefore fails
  after composing at most `max_aliases` alias events, in microseconds.

libyaml parses the events (C speed); only the composition runs in Python. A document
without any `*` cannot hold an alias, so it takes the all-C path and a cheap walk for
the depth.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import Node
from yaml.resolver import Resolver

from aggregator.limits import LimitExceeded, nesting_depth

try:  # libyaml present: C scanner and parser
    from yaml.cyaml import CParser as _Parser

    _FastLoader: type = yaml.CSafeLoader
    _C = True
except ImportError:  # pragma: no cover - pure-Python PyYAML
    _FastLoader = yaml.SafeLoader
    _C = False

DEPTH_KEY = "[limits] max_yaml_depth"
ALIASES_KEY = "[limits] max_yaml_aliases"


class _LimitedComposer(Composer):
    """Composer that measures depth and expanded alias count as nodes are composed."""

    def __init__(self, max_depth: int, max_aliases: int) -> None:
        Composer.__init__(self)
        self._max_depth = max_depth
        self._max_aliases = max_aliases
        # One [height of children, expanded aliases] per open collection (+ the document).
        self._frames: list[list[int]] = [[0, 0]]
        self._weights: dict[str, tuple[int, int]] = {}  # anchor -> (height, aliases)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            weight = self._weights.get(event.anchor)
            if weight is not None:  # an undefined alias is left to PyYAML's own error
                self._count(weight[0], weight[1] + 1, event)
            return Composer.compose_node(self, parent, index)
        if isinstance(event, SequenceStartEvent | MappingStartEvent):
            if len(self._frames) > self._max_depth:
                raise self._too_deep(len(self._frames), event)
            self._frames.append([0, 0])
            node = Composer.compose_node(self, parent, index)
            height, aliases = self._frames.pop()
            height += 1
        else:
            node = Composer.compose_node(self, parent, index)
            height = aliases = 0
        if event.anchor is not None:
            self._weights[event.anchor] = (height, aliases)
        self._count(height, aliases, event)
        return node

    def _count(self, height: int, aliases: int, event: Any) -> None:
        """Add a composed child (or alias) to the open collection, checking the caps."""
        frame = self._frames[-1]
        frame[0] = max(frame[0], height)
        frame[1] += aliases
        # A collection's expanded alias count is part of the document's, so checking
        # each open collection catches a breach as soon as it is composed.
        if frame[1] > self._max_aliases:
            raise LimitExceeded(
                "alias uses (as expanded)", ALIASES_KEY, self._max_aliases, line=_line(event)
            )
        depth = len(self._frames) - 1 + height
        if depth > self._max_depth:
            raise self._too_deep(depth, event)

    def _too_deep(self, depth: int, event: Any) -> LimitExceeded:
        return LimitExceeded(
            "nesting depth", DEPTH_KEY, self._max_depth, found=depth, line=_line(event)
        )


def _line(event: Any) -> int | None:
    mark = getattr(event, "start_mark", None)
    return None if mark is None else mark.line + 1


if _C:

    class _LimitedLoader(_LimitedComposer, _Parser, SafeConstructor, Resolver):
        def __init__(self, stream: str, max_depth: int, max_aliases: int) -> None:
            _Parser.__init__(self, stream)
            _LimitedComposer.__init__(self, max_depth, max_aliases)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover - pure-Python PyYAML
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _LimitedLoader(  # type: ignore[no-redef]
        Reader, Scanner, Parser, _LimitedComposer, SafeConstructor, Resolver
    ):
        def __init__(self, stream: str, max_depth: int, max_aliases: int) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _LimitedComposer.__init__(self, max_depth, max_aliases)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def safe_load(text: str, *, max_depth: int, max_aliases: int) -> Any:
    """Load one YAML document as plain data, or raise yaml.YAMLError / LimitExceeded.

    Line numbers in a LimitExceeded are 1-based within `text`.
    """
    if "*" not in text:  # no alias possible: all-C load, then a cheap depth check
        loader = _FastLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        nesting_depth(data, max_depth, DEPTH_KEY)
        return data
    limited = _LimitedLoader(text, max_depth, max_aliases)
    try:
        return limited.get_single_data()
    finally:
        limited.dispose()
