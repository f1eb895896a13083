"""The parse cache ("parse" namespace): each local record file's DocumentResult, keyed
by the file's absolute path and checked against its size and mtime_ns, so an
unchanged file is neither read nor parsed. Tied to the parse context (the program's
fingerprint and the settings that shape records): when it changes, every file is
parsed again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from aggregator.model import DocumentResult
from aggregator.state.codec import Undecodable
from aggregator.state.keys import FILE_KEY, STAMP, folder_key
from aggregator.state.record_codec import decode_result
from aggregator.state.store import StateStore

__all__ = ["CONTEXT_KEY", "FILE_KEY", "PARSE", "STAMP", "STAMP_SIZE", "ParseCache",
           "ReadOnlyParseCache", "cacheable", "file_stamp"]

STAMP_SIZE = STAMP.size

PARSE = "parse"
CONTEXT_KEY = "context"


def file_stamp(size: int, mtime_ns: int) -> bytes:
    """What tells an unchanged file: its size and modification time in nanoseconds."""
    return STAMP.pack(size, mtime_ns)


def cacheable(result: DocumentResult) -> bool:
    """A file that could not be read at all may become readable without its size or
    time changing (permissions), so such a result is not remembered."""
    return not any(p.line is None and p.field is None and not result.records
                   for p in result.problems)  # fmt: skip



class ParseCache:
    """Parse results of local record files, valid while a file's stamp is unchanged."""

    def __init__(self, store: StateStore, context: bytes, *, full: bool = False) -> None:
        self._store = store
        self._context = hashlib.sha256(context).digest()
        usable = not full and store.get(PARSE, CONTEXT_KEY) == self._context
        self._entries: dict[str, bytes] = {}
        # The keys of the entries there are (None: asked of the store when finishing).
        self._known: set[str] | None = None
        if usable:
            self._entries = store.items(PARSE)
            self._entries.pop(CONTEXT_KEY, None)
            self._known = {key for key in self._entries if key.startswith(FILE_KEY)}
        # Entries made in another context (another program, other settings, --full) are
        # not loaded at all: at a million files their values are half a GB, their keys
        # 170 MB held through the build (benchmarks/bench_scale.py, "first (kept)").
        self._kept: set[str] = set()
        self._replaced: dict[str, bytes] = {}  # entries of files that changed, until finish

    key = staticmethod(folder_key)  # a source folder's key: its files' keys begin so

    def lookup(self, key: str, stamp: bytes | None) -> memoryview | None:
        """The encoded result for `key` if it was made from a file with this stamp."""
        entry = self._entries.pop(key, None)  # each file is looked up once; free as we go
        if entry is None:
            return None
        if stamp is None or not entry.startswith(stamp):
            self._replaced[key] = entry  # the last good result, should the new one be refused
            return None
        self._kept.add(key)
        return memoryview(entry)[STAMP_SIZE :]

    def left_under(self, prefix: str) -> list[tuple[str, DocumentResult]]:
        """The remembered results of files under the folder key `prefix` that were not
        looked up this build (gone, or in a folder that could not be read), in key order;
        they stay remembered."""
        found = []
        for key in sorted(k for k in self._entries if k.startswith(prefix)):
            entry = self._entries.pop(key)
            try:
                found.append((key, decode_result(memoryview(entry)[STAMP_SIZE :], "")))
            except Undecodable:
                continue  # a damaged entry: nothing to keep
            self._kept.add(key)
        return found

    def previous(self, key: str) -> DocumentResult | None:
        """The result remembered for a file before it changed this build, if any."""
        entry = self._replaced.get(key)
        if entry is None:
            return None
        try:
            return decode_result(memoryview(entry)[STAMP_SIZE :], "")
        except Undecodable:
            return None

    def restore(self, keys: Iterable[str]) -> None:
        """Remember the previous results of these changed files again (the new ones were
        refused), so the next build compares against them too."""
        pairs = [(key, self._replaced[key]) for key in keys if key in self._replaced]
        self._kept.update(key for key, _ in pairs)
        self._store.put_many(PARSE, pairs)

    def save(self, items: Iterable[tuple[str, bytes, bytes]]) -> None:
        pairs = []
        for key, stamp, encoded in items:
            self._kept.add(key)
            pairs.append((key, stamp + encoded))
        self._store.put_many(PARSE, pairs)

    @staticmethod
    def add(store: StateStore, items: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Remember changed files' results without loading the others' (aggregator.delta)."""
        store.put_many(PARSE, [(key, stamp + encoded) for key, stamp, encoded in items])

    @staticmethod
    def forget(store: StateStore, keys: Iterable[str]) -> None:
        """Forget the results of files that are gone or not cacheable this time."""
        store.delete_many(PARSE, keys)

    @staticmethod
    def stored(store: StateStore, keys: Iterable[str]) -> dict[str, memoryview]:
        """The encoded results remembered for these keys (the stamp left off), without
        loading the others'."""
        return {key: memoryview(entry)[STAMP_SIZE:]
                for key, entry in store.get_many(PARSE, keys).items()}  # fmt: skip

    def finish(self) -> None:
        """Drop the entries of files that are gone (or not cacheable this time)."""
        with self._store.transaction():
            kept = self._kept
            if self._known is None:  # read key by key: only the stale ones are held
                stale = [key for key in self._store.keys(PARSE)
                         if key.startswith(FILE_KEY) and key not in kept]  # fmt: skip
            else:
                stale = sorted(self._known - kept)
            self._store.delete_many(PARSE, stale)
            self._store.put(PARSE, CONTEXT_KEY, self._context)
        self._entries = {}
        self._replaced = {}


class ReadOnlyParseCache(ParseCache):
    """The parse cache for a run that writes nothing (`build --dry-run`, `topics`): it
    answers lookups and remembers nothing new."""

    def save(self, items: Iterable[tuple[str, bytes, bytes]]) -> None:
        for _ in items:
            pass

    def restore(self, keys: Iterable[str]) -> None:
        self._kept.update(key for key in keys if key in self._replaced)

    def finish(self) -> None:
        self._entries = {}
        self._replaced = {}


