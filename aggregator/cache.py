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

import functools
import hashlib
import importlib
import importlib.util
import marshal
import os
import re
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from aggregator.config import Config, SiteConfig
from aggregator.errors import Problem
from aggregator.model import (
    R_ORIGIN,
    DocumentResult,
    Record,
    field_values,
    record_from_values,
    record_values,
)
from aggregator.rank import FeedPlan
from aggregator.state import StateStore
from aggregator.topics import topic_key

PARSE = "parse"
FEEDS = "feeds"
FILE_KEY = "file:"  # parse-cache keys of local files; other keys are not ours to drop
CONTEXT_KEY = "context"
_STAMP = struct.Struct("<qq")  # size, mtime_ns
_FEED_ENTRY = struct.Struct("<32s32sq")  # inputs digest, output sha256, output size
# The libraries that shape records and feeds: (distribution, module, the module's own
# version when its metadata cannot be found beside it).
_LIBRARIES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("pyyaml", "yaml", lambda module: module.__version__),
    ("feedgen", "feedgen", lambda module: importlib.import_module("feedgen.version").version_str),
    ("lxml", "lxml", lambda module: importlib.import_module("lxml.etree").__version__),
    ("python-slugify", "slugify", lambda module: module.__version__),
    ("nh3", "nh3", lambda module: module.__version__),
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
    for name, module, attribute in _LIBRARIES:
        digest.update(f"{name}={library_version(name, module, attribute)}".encode())
    return digest.digest()


def templates_digest(templates: Path | None) -> bytes:
    """What the pages' own templates hold: a change renders every page again."""
    digest = hashlib.sha256()
    if templates is not None:
        for path in sorted(templates.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(templates).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.digest()


def library_version(distribution: str, module: str, attribute: Callable[[Any], str]) -> str:
    """The installed version of a library, from the name of its `.dist-info` folder
    beside it: without importing it (feedgen, lxml and nh3 would be a third of a
    no-change rebuild) or importlib.metadata (as slow as the imports). Falls back on
    the module's own version attribute."""
    spec = importlib.util.find_spec(module)  # a top-level name: found, not imported
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent
        if spec.submodule_search_locations is not None:
            folder = folder.parent  # a package: its folder sits in site-packages
        wanted = _distribution_key(distribution)
        for entry in _entries(str(folder)):
            name, _, version = entry.removesuffix(".dist-info").partition("-")
            if entry.endswith(".dist-info") and _distribution_key(name) == wanted:
                return version
    return attribute(importlib.import_module(module))


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()  # PEP 503 normalisation, as wheels spell it


@functools.cache
def _entries(folder: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(folder)))
    except OSError:
        return ()


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
        self._replaced: dict[str, bytes] = {}  # entries of files that changed, until finish

    @staticmethod
    def key(path: str) -> str:
        return FILE_KEY + path

    def lookup(self, key: str, stamp: bytes | None) -> memoryview | None:
        """The encoded result for `key` if it was made from a file with this stamp."""
        entry = self._entries.pop(key, None)  # each file is looked up once; free as we go
        if entry is None:
            return None
        if stamp is None or not entry.startswith(stamp):
            self._replaced[key] = entry  # the last good result, should the new one be refused
            return None
        self._kept.add(key)
        return memoryview(entry)[_STAMP.size :]

    def left_under(self, prefix: str) -> list[tuple[str, DocumentResult]]:
        """The remembered results of files under the folder key `prefix` that were not
        looked up this build (gone, or in a folder that could not be read), in key order;
        they stay remembered."""
        found = []
        for key in sorted(k for k in self._entries if k.startswith(prefix)):
            entry = self._entries.pop(key)
            try:
                found.append((key, decode_result(memoryview(entry)[_STAMP.size :], "")))
            except (ValueError, TypeError, EOFError, IndexError):
                continue  # a damaged entry: nothing to keep
            self._kept.add(key)
        return found

    def previous(self, key: str) -> DocumentResult | None:
        """The result remembered for a file before it changed this build, if any."""
        entry = self._replaced.get(key)
        if entry is None:
            return None
        try:
            return decode_result(memoryview(entry)[_STAMP.size :], "")
        except (ValueError, TypeError, EOFError, IndexError):
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
        """Remember new files' results without touching the others' (see Snapshot)."""
        store.put_many(PARSE, [(key, stamp + encoded) for key, stamp, encoded in items])

    def finish(self) -> None:
        """Drop the entries of files that are gone (or not cacheable this time)."""
        with self._store.transaction():
            self._store.delete_many(PARSE, sorted(self._known - self._kept))
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


# --- the feed cache ---------------------------------------------------------------


def feed_inputs(
    program: bytes, site: SiteConfig, plan: FeedPlan, names: dict[str, str], archive_pages: int = 0
) -> bytes:
    """Digest of everything a feed's bytes are made from: the program, the site settings,
    the feed's topic, how many archive documents it links to, and its items in order,
    with the topic names shown for them."""
    digest = hashlib.sha256(program)
    digest.update(repr((site, plan.topic, plan.directory, archive_pages)).encode())
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
    curation = (config.ranking, config.feeds, config.clustering, config.filters)
    # Which files a source reads and which records it keeps (not in the parse context:
    # they change no file's parse result).
    chosen = [(s.include, s.exclude, s.filters) for s in config.sources]
    digest.update(repr((config.site, curation, chosen)).encode())
    digest.update(os.path.abspath(output).encode())
    return digest.digest()


def file_stamps(
    keys: Sequence[str], files: Sequence[tuple[str, os.stat_result | None]]
) -> tuple[dict[str, bytes], list[str]]:
    """Every record file's stamp by cache key, and the keys of files found without a
    stat (their state cannot be known without reading them)."""
    stamps = {}
    unstamped = []
    for key, (_, stat) in zip(keys, files, strict=True):
        if stat is None:
            unstamped.append(key)
        else:
            stamps[key] = file_stamp(stat.st_size, stat.st_mtime_ns)
    return stamps, unstamped


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the last build read, so that the next one can skip the work: a rerun over
    the very same files, settings and program is that build again."""

    settings: bytes  # settings_digest
    stamps: dict[str, bytes]  # every record file read, by parse-cache key
    counts: dict[str, int]  # BuildReport counts, by field name (COUNTS)
    problems: tuple[Problem, ...]  # what the sources' files were found to hold

    COUNTS = ("documents", "records", "unpublished", "filtered", "duplicates", "items", "feeds",
              "files")  # fmt: skip

    @classmethod
    def load(cls, store: StateStore) -> Snapshot | None:
        """The last build's snapshot, whatever its settings (aggregator.incremental
        compares them); None if there is none or it cannot be read."""
        data = store.get(SNAPSHOT, "last")
        if data is None:
            return None
        try:
            stored, stamps, counts, problems = marshal.loads(data)
            return cls(
                stored,
                stamps,
                dict(zip(cls.COUNTS, counts, strict=True)),
                tuple(Problem(*values) for values in problems),
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
            )
        )
        store.put(SNAPSHOT, "last", data)

    @staticmethod
    def forget(store: StateStore) -> None:
        store.delete_many(SNAPSHOT, ["last"])
