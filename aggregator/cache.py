"""What a build remembers between runs: parsed record files and rendered feeds.

Both live in the state store. The parse cache ("parse" namespace) holds each record
file's DocumentResult keyed by the file's absolute path and checked against its size
and mtime_ns, so an unchanged file is neither read nor parsed. The feed cache ("feeds"
namespace) holds a digest of each feed's inputs and of the bytes written, so a feed
whose inputs did not change is not rendered again.

Both are tied to a fingerprint of the program (the package's source, the versions of
the libraries that shape records and feeds) and of the settings that shape records:
when any of them changes, everything is parsed and rendered again.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import feedgen.version
import lxml.etree
import nh3
import slugify
import yaml

from aggregator.config import Config, SiteConfig
from aggregator.errors import Problem
from aggregator.rank import FeedPlan, Topic
from aggregator.records import (
    R_ORIGIN,
    DocumentResult,
    Record,
    field_values,
    record_from_values,
    record_values,
)
from aggregator.state import StateStore
from aggregator.topics import topic_key

PARSE = "parse"
FEEDS = "feeds"
FILE_KEY = "file:"  # parse-cache keys of local files; other keys are not ours to drop
CONTEXT_KEY = "context"
_STAMP = struct.Struct("<qq")  # size, mtime_ns
_FEED_ENTRY = struct.Struct("<32s32sq")  # inputs digest, output sha256, output size
# The libraries that shape records and feeds. Their own version attributes: they are
# loaded already, while importlib.metadata would add a fifth to the start-up time.
_LIBRARY_VERSIONS = (
    ("pyyaml", yaml.__version__),
    ("feedgen", feedgen.version.version_str),
    ("lxml", lxml.etree.__version__),
    ("python-slugify", slugify.__version__),
    ("nh3", nh3.__version__),
)


def program_fingerprint() -> bytes:
    """Digest of this package's source and the versions of the libraries it relies on."""
    digest = hashlib.sha256(sys.version.encode())
    package = Path(__file__).resolve().parent
    # Templates and the stylesheet shape the output as much as the code does.
    sources = [path for pattern in ("*.py", "*.html", "*.xsl") for path in package.rglob(pattern)]
    for source in sorted(sources):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    for name, version in _LIBRARY_VERSIONS:
        digest.update(f"{name}={version}".encode())
    return digest.digest()


# --- DocumentResult <-> bytes ------------------------------------------------------
# marshal is the fastest safe codec for plain tuples; the field lists come from the
# dataclasses themselves, so a new plain field is carried without a change here (and a
# field marshal cannot carry fails loudly when encoding).

_P_ORIGIN = [f.name for f in fields(Problem)].index("origin")


def _encode_record(record: Record) -> list[object]:
    values = record_values(record)
    values[R_ORIGIN] = ""  # the file's path is given back when decoding
    return values


def _decode_record(values: list[Any], origin: str) -> Record:
    values[R_ORIGIN] = origin
    return record_from_values(values)


def encode_result(result: DocumentResult) -> bytes:
    """The result without its origin (the path is the cache key)."""
    problems = []
    for problem in result.problems:
        values = list(field_values(problem))
        values[_P_ORIGIN] = ""
        problems.append(values)
    return marshal.dumps(
        ([_encode_record(record) for record in result.records], problems, result.unpublished)
    )


def decode_result(data: bytes | memoryview, origin: str) -> DocumentResult:
    records, problems, unpublished = marshal.loads(data)
    decoded_problems = []
    for values in problems:
        values[_P_ORIGIN] = origin
        decoded_problems.append(Problem(*values))
    return DocumentResult(
        tuple([_decode_record(values, origin) for values in records]),
        tuple(decoded_problems),
        unpublished,
    )


def cacheable(result: DocumentResult) -> bool:
    """A file that could not be read at all may become readable without its size or
    time changing (permissions), so such a result is not remembered."""
    return not any(p.line is None and p.field is None and not result.records
                   for p in result.problems)  # fmt: skip


# --- the parse cache --------------------------------------------------------------


def file_stamp(size: int, mtime_ns: int) -> bytes:
    """What tells an unchanged file: its size and modification time in nanoseconds."""
    return _STAMP.pack(size, mtime_ns)


class ParseCache:
    """Parse results of local record files, valid while a file's stamp is unchanged."""

    def __init__(self, store: StateStore, context: bytes, *, full: bool = False) -> None:
        self._store = store
        self._context = hashlib.sha256(context).digest()
        entries = store.items(PARSE)
        usable = entries.pop(CONTEXT_KEY, None) == self._context and not full
        self._known = {key for key in entries if key.startswith(FILE_KEY)}
        self._entries = entries if usable else {}
        self._kept: set[str] = set()

    @staticmethod
    def key(path: str) -> str:
        return FILE_KEY + path

    def lookup(self, key: str, stamp: bytes | None) -> memoryview | None:
        """The encoded result for `key` if it was made from a file with this stamp."""
        entry = self._entries.pop(key, None)  # each file is looked up once; free as we go
        if entry is None or stamp is None or not entry.startswith(stamp):
            return None
        self._kept.add(key)
        return memoryview(entry)[_STAMP.size :]

    def save(self, items: Iterable[tuple[str, bytes, bytes]]) -> None:
        pairs = []
        for key, stamp, encoded in items:
            self._kept.add(key)
            pairs.append((key, stamp + encoded))
        self._store.put_many(PARSE, pairs)

    @staticmethod
    def add(store: StateStore, items: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Remember new files' results without touching the others' (see Snapshot)."""
        store.put_many(PARSE, [(key, stamp + encoded) for key, stamp, encoded in items])

    def finish(self) -> None:
        """Drop the entries of files that are gone (or not cacheable this time)."""
        with self._store.transaction():
            self._store.delete_many(PARSE, sorted(self._known - self._kept))
            self._store.put(PARSE, CONTEXT_KEY, self._context)
        self._entries = {}


class ReadOnlyParseCache(ParseCache):
    """The parse cache for a run that writes nothing (`build --dry-run`, `topics`): it
    answers lookups and remembers nothing new."""

    def save(self, items: Iterable[tuple[str, bytes, bytes]]) -> None:
        for _ in items:
            pass

    def finish(self) -> None:
        self._entries = {}


# --- the feed cache ---------------------------------------------------------------


def feed_inputs(program: bytes, site: SiteConfig, plan: FeedPlan, names: dict[str, str]) -> bytes:
    """Digest of everything a feed's bytes are made from: the program, the site settings,
    the feed's topic and its items in order, with the topic names shown for them."""
    digest = hashlib.sha256(program)
    digest.update(repr((site, plan.topic, plan.directory)).encode())
    for item in plan.items:
        shown = [names.get(topic_key(name), name) for name in item.topics]
        digest.update(repr((item, shown)).encode())
    return digest.digest()


class FeedCache:
    """Which feed files are known to hold what their current inputs would render."""

    def __init__(self, store: StateStore, output: Path, *, full: bool = False) -> None:
        self._store = store
        self._output = output
        self._known = store.items(FEEDS)
        self._entries = {} if full else dict(self._known)
        self._now: dict[str, bytes] = {}

    def is_current(self, relative: str, inputs: bytes) -> bool:
        """True if the file was rendered from `inputs` and still holds those bytes."""
        entry = self._entries.get(relative)
        if entry is None or _FEED_ENTRY.unpack(entry)[0] != inputs:
            return False
        if not self._holds(relative, entry):
            return False
        self._now[relative] = entry
        return True

    def _holds(self, relative: str, entry: bytes) -> bool:
        """True if the file is on disk with the bytes `entry` recorded."""
        _, sha256, size = _FEED_ENTRY.unpack(entry)
        try:
            data = (self._output / relative).read_bytes()
        except OSError:
            return False
        return len(data) == size and hashlib.sha256(data).digest() == sha256

    def rendered(self, relative: str, inputs: bytes, sha256: bytes, size: int) -> None:
        """The file now holds `size` bytes with this digest, rendered from `inputs`."""
        self._now[relative] = _FEED_ENTRY.pack(inputs, sha256, size)

    def all_current(self) -> bool:
        """True if every file the last build made is on disk with the bytes it wrote."""
        return bool(self._known) and all(
            self._holds(relative, entry) for relative, entry in self._known.items()
        )

    def stale(self) -> list[tuple[str, bytes, int]]:
        """Files an earlier build made that this one did not: (relative path, sha256, size).
        Call after every file of this build was rendered or found current."""
        return [
            (relative, *_FEED_ENTRY.unpack(entry)[1:])
            for relative, entry in sorted(self._known.items())
            if relative not in self._now
        ]

    def finish(self) -> None:
        """Remember this build's feeds; forget feeds that were not made this time."""
        known = self._known
        changed = [(key, entry) for key, entry in self._now.items() if known.get(key) != entry]
        with self._store.transaction():
            self._store.put_many(FEEDS, changed)
            self._store.delete_many(FEEDS, sorted(set(self._known) - set(self._now)))


# --- the whole build ----------------------------------------------------------------
SNAPSHOT = "build"  # state namespace: what the last build read and chose


def settings_digest(config: Config, context: bytes, output: Path) -> bytes:
    """Digest of what a build depends on besides the record files: the program, the
    settings and the output folder."""
    digest = hashlib.sha256(context)
    digest.update(repr((config.site, config.ranking, config.feeds)).encode())
    digest.update(os.path.abspath(output).encode())
    return digest.digest()


def file_stamps(
    config: Config, keys: Sequence[str], files: Sequence[tuple[str, os.stat_result | None]]
) -> dict[str, bytes] | None:
    """Every record file's stamp by cache key; None when the inputs cannot be known
    without reading them (remote sources, a file without a stat)."""
    if any(source.url for source in config.sources):
        return None
    stamps = {}
    for key, (_, stat) in zip(keys, files, strict=True):
        if stat is None:
            return None
        stamps[key] = file_stamp(stat.st_size, stat.st_mtime_ns)
    return stamps


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the last build read and chose, so that the next one can skip the work:
    a rerun over the very same files is that build again, and a rerun over the same
    files plus new ones only needs the new records and each feed's chosen items."""

    settings: bytes  # settings_digest
    stamps: dict[str, bytes]  # every record file read, by parse-cache key
    counts: dict[str, int]  # BuildReport counts, by field name (COUNTS)
    problems: tuple[Problem, ...]  # what the sources' files were found to hold
    guids: frozenset[str]  # every story, for telling a new story from a duplicate
    spellings: dict[str, dict[str, int]]  # topic key -> spelling -> stories using it
    plans: tuple[FeedPlan, ...]  # every feed: its topic, chosen items and total

    COUNTS = ("documents", "records", "unpublished", "duplicates", "items", "feeds", "files")

    @classmethod
    def load(cls, store: StateStore, settings: bytes) -> Snapshot | None:
        data = store.get(SNAPSHOT, "last")
        if data is None:
            return None
        try:
            (stored, stamps, counts, problems, guids, spellings, plans) = marshal.loads(data)
            if stored != settings:
                return None
            return cls(
                stored,
                stamps,
                dict(zip(cls.COUNTS, counts, strict=True)),
                tuple(Problem(*values) for values in problems),
                frozenset(guids),
                spellings,
                tuple(_decode_plan(plan) for plan in plans),
            )
        except (ValueError, TypeError, EOFError, IndexError):
            return None

    def save(self, store: StateStore) -> None:
        data = marshal.dumps(
            (
                self.settings,
                self.stamps,
                tuple(self.counts[name] for name in self.COUNTS),
                tuple(field_values(problem) for problem in self.problems),
                tuple(self.guids),
                self.spellings,
                tuple(_encode_plan(plan) for plan in self.plans),
            )
        )
        store.put(SNAPSHOT, "last", data)

    @staticmethod
    def forget(store: StateStore) -> None:
        store.delete_many(SNAPSHOT, ["last"])

    def added(self, stamps: dict[str, bytes]) -> list[str] | None:
        """The keys of files that are new since this snapshot, if every file it read is
        still there unchanged; else None."""
        if len(stamps) < len(self.stamps):
            return None
        old = self.stamps
        if any(stamps.get(key) != stamp for key, stamp in old.items()):
            return None
        return [key for key in stamps if key not in old]


def _encode_plan(plan: FeedPlan) -> tuple[object, ...]:
    topic = None if plan.topic is None else (plan.topic.key, plan.topic.name, plan.topic.slug)
    items = tuple((_encode_record(record), record.origin) for record in plan.items)
    return topic, plan.total, items


def _decode_plan(values: tuple[Any, ...]) -> FeedPlan:
    topic, total, items = values
    records = tuple(_decode_record(list(record), origin) for record, origin in items)
    return FeedPlan(None if topic is None else Topic(*topic), records, total)
