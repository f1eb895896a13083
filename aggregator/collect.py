"""Stage: read every source into records (parse, validate, filter), from the parse cache
where a file is unchanged, holding a source's last records where its files cannot be
trusted now, and fetching (or, with PostgreSQL state, reading) the remote sources.

A build holds what it read as `ReadRecords`: each record's Brief (what clustering
reads) and StoryKey (what ranking reads), made on the worker that parsed it, and the
encoded result it came in; a Record is made again only for a story that merges
several or that a feed shows. Decoding every record here was most of this process's
time while the workers parsed, and the records most of its memory.
"""

from __future__ import annotations

import marshal
import os
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

from aggregator.cluster import Brief, brief_of
from aggregator.config import Config, FeedFilterConfig, RankingConfig
from aggregator.errors import Problem
from aggregator.filters import FeedRules, first_match, source_rules
from aggregator.model import DocumentResult, Record
from aggregator.parallel import Loader, WorkerPool, map_files, worker_count
from aggregator.progress import Progress, progress_for
from aggregator.rank import StoryKey, story_key
from aggregator.sources.files import FoundFiles, find_files
from aggregator.sources.results import FetchStats, RemoteCollection
from aggregator.state import StateStore, open_read_only
from aggregator.state.codec import Undecodable
from aggregator.state.parse_cache import ParseCache, ReadOnlyParseCache, cacheable
from aggregator.state.record_codec import decode_result, encode_result
from aggregator.validate import RecordDefaults, load_record_file

Fetch = Callable[[Sequence[str]], Mapping[str, memoryview]]  # parse-cache entries by key


@dataclass(frozen=True, slots=True)
class Briefed:
    """A file's result that is one record and nothing else (most record files): its
    brief and key, and the encoded result to make the record from when it is needed,
    or the parse-cache key it is stored under (`encoded` None)."""

    encoded: bytes | memoryview | None
    origin: str
    brief: Brief
    key: StoryKey
    stored: str = ""  # its parse-cache key: where it is read back from without `encoded`
    problems: ClassVar[tuple[Problem, ...]] = ()  # a result with problems comes whole
    unpublished: ClassVar[int] = 0

    def whole(self, fetch: Fetch | None = None) -> DocumentResult:
        encoded = self.encoded
        if encoded is None:
            assert fetch is not None, "a result left in the parse cache needs it to be read"
            encoded = fetch([self.stored])[self.stored]
        return decode_result(encoded, self.origin)


Read = DocumentResult | Briefed  # one file's (or response's) result as a build holds it


class ReadRecords:
    """Every record a build read, in order: its Brief and StoryKey, and the record itself
    when asked for (`record`). A record that came whole (from a document of several
    records, one with problems, a remote source, a source's filters) is kept whole:
    making one of several records again would decode them all."""

    __slots__ = ("_all", "_documents", "_fetch", "_held", "_ranking", "_rules", "briefs", "keys")

    def __init__(self, ranking: RankingConfig, rules: FeedRules, fetch: Fetch | None = None):
        self.briefs: list[Brief] = []
        self.keys: list[StoryKey] = []
        self._held: list[Briefed | Record] = []
        self._documents = array("l")  # each record's document: its place in the results
        self._ranking = ranking
        self._rules = rules
        self._fetch = fetch  # reads back what the parse cache holds
        self._all: tuple[Record, ...] | None = None

    def __len__(self) -> int:
        return len(self.briefs)

    def add(self, result: Read, document: int) -> None:
        if isinstance(result, Briefed):
            self.briefs.append(result.brief)
            self.keys.append(result.key)
            self._held.append(result)
            self._documents.append(document)
            return
        for record in result.records:
            self.briefs.append(brief_of(record))
            self.keys.append(story_key(record, self._ranking, self._rules))
            self._held.append(record)
            self._documents.append(document)

    def record(self, index: int) -> Record:
        if self._all is not None:
            return self._all[index]
        held = self._held[index]
        return held.whole(self._fetch).records[0] if isinstance(held, Briefed) else held

    def records(self) -> tuple[Record, ...]:
        """Every record, made now and kept (for `explain` and tests; a build asks for few)."""
        if self._all is None:
            self._all = tuple([self.record(index) for index in range(len(self._held))])
        return self._all

    def document(self, index: int) -> int:
        """Where the result the record came in is in the results `collect` read."""
        return self._documents[index]


@dataclass(frozen=True, slots=True)
class Collection:
    """Everything read from the sources, before merging."""

    read: ReadRecords
    problems: tuple[Problem, ...]
    documents: int
    unpublished: int
    parsed: int = 0  # files read and parsed (the others came from the parse cache)
    fetch: FetchStats = field(default_factory=FetchStats)
    # Left out by a source's filters: (record, the rule), and files its globs exclude.
    filtered: tuple[tuple[Record, str], ...] = ()
    excluded_files: int = 0
    held: int = 0  # sources whose last records were kept (unreadable, or shrank too far)

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record read, made now (`explain`, tests; a build reads `read`)."""
        return self.read.records()


def _owner(found: FoundFiles, result: Read) -> int:
    """The source a result kept from an earlier build belongs to (-1 for none)."""
    if isinstance(result, Briefed):
        origins = [result.origin]
    else:
        origins = [record.origin for record in result.records[:1]]
    for origin in origins:
        for span in found.spans:
            if origin.startswith(span.root.rstrip(os.sep) + os.sep):
                return span.index
    return -1


def filter_by_source(
    config: Config, results: Sequence[Read], owners: Sequence[int], fetch: Fetch | None = None
) -> tuple[list[Read], list[tuple[Record, str]]]:
    """Each result without the records its source's filters leave out, and those records
    with the rule that left each out (a filtered record is not a problem)."""
    rules = source_rules(config.sources)
    if not any(rules):
        return list(results), []
    kept_results: list[Read] = []
    filtered = []
    for result, owner in zip(results, owners, strict=True):
        applied = rules[owner] if owner >= 0 else ()
        if applied and isinstance(result, Briefed):
            result = result.whole(fetch)  # the rules read the record's text
        if not applied or not result.records:
            kept_results.append(result)
            continue
        kept = []
        for record in result.records:
            rule = first_match(applied, record)
            if rule is None:
                kept.append(record)
            else:
                filtered.append((record, rule.description))
        kept_results.append(replace(result, records=tuple(kept)))
    return kept_results, filtered


def collect(
    config: Config,
    cache: ParseCache | None = None,
    *,
    found: FoundFiles | None = None,
    store: StateStore | None = None,
    progress: Progress | None = None,
    persist: bool = True,
    pool: WorkerPool | None = None,
    accept_shrink: bool = False,
) -> Collection:
    """Read every source. Bad input becomes Problems; it never raises for content.

    With a cache, files whose size and mtime are unchanged are not read again, and a
    source that lost files it could not read, or shrank past `[build] max_shrink`
    (unless `accept_shrink`), keeps its last records (see `_hold_sources`). Remote
    sources use `store` for their fetch cache (or open the state file themselves).
    """
    found = found or find_files(config)
    load = partial(load_record_file, defaults=RecordDefaults.from_config(config))
    with ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        # What a cache that writes holds need not stay here: it is read back if needed.
        fetch = None
        if store is not None and cache is not None and not isinstance(cache, ReadOnlyParseCache):
            fetch = partial(ParseCache.stored, store)
        results, parsed = read_record_files(found.files, found.keys, load, cache, pool,
                                            finish=False, ranking=config.ranking,
                                            filters=config.filters, fetch=fetch)  # fmt: skip
    held = 0
    if cache is not None:
        held = _hold_sources(config, found, results, cache, store, accept_shrink)
        cache.finish()
    owners = [*found.sources, *(_owner(found, result) for result in results[len(found.files) :])]
    remote = _collect_remote(config, store, progress, persist)
    results.extend(remote.results)
    results, filtered = filter_by_source(config, results, [*owners, *remote.sources], fetch)
    if found.skipped:
        results.append(DocumentResult(problems=tuple(found.skipped)))
    read = ReadRecords(config.ranking, FeedRules.of(config.filters), fetch)
    for position, result in enumerate(results):
        read.add(result, position)
    return Collection(
        read=read,
        problems=tuple(p for result in results for p in result.problems),
        documents=len(found.files) + len(remote.results),
        unpublished=sum(result.unpublished for result in results),
        parsed=parsed,
        fetch=remote.stats,
        filtered=tuple(filtered),
        excluded_files=found.excluded,
        held=held,
    )


SOURCES = "sources"  # state-store namespace: records each `path` source gave last time


SHRINK_FLOOR = 10  # sources that had fewer records are not guarded (every record counts)


def _hold_sources(
    config: Config,
    found: FoundFiles,
    results: list[Read],
    cache: ParseCache,
    store: StateStore | None,
    accept_shrink: bool,
) -> int:
    """Keep what a source gave last time where its files cannot be trusted now; extends
    `results` and returns how many sources were held.

    - A folder that could not be listed (reported by find_files) contributes the records
      its files gave at the last build, from the parse cache.
    - A source that yields far fewer records than at the last build (under
      1 - `[build] max_shrink` of them) is not trusted without `accept_shrink`, as
      `rsync --max-delete` is not: its files' last results are used and remembered again,
      and one error says so. It is accepted once run with `--accept-shrink`.
    """
    held = 0
    kept: dict[int, int] = {}  # source index -> records kept from its unreadable folders
    for prefix, _, index in found.unreadable:
        for key, result in cache.left_under(prefix):
            results.append(_with_origin(result, found.path_of(key)))
            kept[index] = kept.get(index, 0) + len(result.records)
        held += 1
    if store is None:
        return held
    counts = store.items(SOURCES)
    updated: list[tuple[str, bytes]] = []
    limit = config.build.max_shrink
    for span in found.spans:
        now = sum(_count(results[i]) for i in range(span.start, span.end))
        now += kept.get(span.index, 0)
        before = int(counts.get(span.prefix, b"0") or 0)
        if accept_shrink or before < SHRINK_FLOOR or now >= before * (1 - limit):
            if counts.get(span.prefix) != str(now).encode():
                updated.append((span.prefix, str(now).encode()))
            continue
        changed = []
        for i in range(span.start, span.end):
            previous = cache.previous(found.keys[i])
            if previous is not None:
                results[i] = _with_origin(previous, found.files[i][0])
                changed.append(found.keys[i])
        cache.restore(changed)
        for key, result in cache.left_under(span.prefix):  # files that are gone
            results.append(_with_origin(result, found.path_of(key)))
        name = config.sources[span.index].name
        reason = (f"{now:,} records, down from {before:,} at the last build: more than "
                  f"{limit:.0%} fewer ([build] max_shrink)")  # fmt: skip
        action = ("not trusted: kept its records from the last build; if the change is meant, "
                  "build once with --accept-shrink")  # fmt: skip
        results.append(DocumentResult(problems=(Problem(name, None, None, reason, action),)))
        held += 1
    store.put_many(SOURCES, updated)
    return held


def _count(result: Read) -> int:
    return 1 if isinstance(result, Briefed) else len(result.records)


def _with_origin(result: DocumentResult, origin: str) -> DocumentResult:
    """A remembered result with the path of its file (the cache stores none)."""
    records = tuple(replace(record, origin=origin) for record in result.records)
    problems = tuple(replace(problem, origin=origin) for problem in result.problems)
    return replace(result, records=records, problems=problems)


def _collect_remote(
    config: Config, store: StateStore | None, progress: Progress | None, persist: bool
) -> RemoteCollection:
    if not any(source.url for source in config.sources):
        return RemoteCollection()
    if config.state.url is not None:
        return _stored_remote(config, store)  # the fetch workers fetch; builds read
    from aggregator.sources.remote import collect_remote, collect_remote_sources  # HTTP stack

    progress = progress or progress_for(sys.stderr)
    defaults = RecordDefaults.from_config(config)
    if store is None:
        return collect_remote_sources(config, progress, persist, defaults)
    return collect_remote(config, store, progress, persist=persist, defaults=defaults)


def _stored_remote(config: Config, store: StateStore | None) -> RemoteCollection:
    """With `[state] url`: the records the fetch workers stored (nothing is fetched)."""
    from aggregator.sources.remote import stored_remote

    if store is not None:
        return stored_remote(config, store)
    with ExitStack() as stack:
        saved = open_read_only(config)  # `check`, `explain`: read only
        if saved is not None:
            stack.enter_context(saved)
        return stored_remote(config, saved)


SAVE_BATCH = 1_000  # cache entries written per statement batch (bounds memory)


def read_record_files(
    files: Sequence[tuple[str, bytes | None]],
    keys: Sequence[str],
    load: Loader,
    cache: ParseCache | None,
    pool: WorkerPool,
    *,
    finish: bool = True,
    ranking: RankingConfig | None = None,
    filters: tuple[FeedFilterConfig, ...] = (),
    fetch: Fetch | None = None,
) -> tuple[list[Read], int]:
    """Each file's result, in order, from the cache when current; and how many were parsed.
    A result of one record and nothing else comes as Briefed (its StoryKey made with
    `ranking` and the feeds' `filters`), without its encoded bytes once `cache` holds
    them when `fetch` reads them back. With `finish=False` the caller finishes the
    cache (after `_hold_sources`)."""
    ranking = ranking or RankingConfig()
    rules = FeedRules.of(filters)
    shared: dict[Any, Any] = {}  # provider keys and topic lists repeat: one object each
    results: list[Read | None] = [None] * len(files)
    misses: list[tuple[int, bytes | None]] = []
    for position, ((path, stamp), key) in enumerate(zip(files, keys, strict=True)):
        hit = None if cache is None else cache.lookup(key, stamp)
        if hit is not None:
            try:
                result = decode_result(hit, path)
            except Undecodable:
                pass  # a damaged entry: parse the file again
            else:
                results[position] = result
                if _briefly(result):
                    values = _brief_values(result.records[0], ranking, rules)
                    results[position] = _briefed(values, None if fetch else hit, path, key,
                                                 shared.setdefault)  # fmt: skip
                continue
        misses.append((position, stamp))
    fresh: list[tuple[str, bytes, bytes]] = []
    job = partial(_parse_briefly, load, ranking, filters)
    parsed = map_files(job, [files[position][0] for position, _ in misses], pool)
    for (position, stamp), (encoded, may_cache, brief) in zip(misses, parsed, strict=True):
        path, key = files[position][0], keys[position]
        saved = cache is not None and may_cache and stamp is not None
        if brief is None:
            results[position] = decode_result(encoded, path)
        else:
            # Once saved, the cache holds the bytes for this process to read back.
            results[position] = _briefed(marshal.loads(brief), None if saved and fetch else encoded,
                                         path, key, shared.setdefault)  # fmt: skip
        if saved:
            assert cache is not None and stamp is not None
            fresh.append((key, stamp, encoded))
            if len(fresh) == SAVE_BATCH:
                cache.save(fresh)
                fresh = []
    if cache is not None:
        cache.save(fresh)
        if finish:
            cache.finish()
    return results, len(misses)  # type: ignore[return-value]


def _briefly(result: DocumentResult) -> bool:
    """Whether a result is held as Briefed: one record and nothing else."""
    return len(result.records) == 1 and not result.problems and not result.unpublished


def _brief_values(record: Record, ranking: RankingConfig, rules: FeedRules) -> tuple[Any, ...]:
    """A record's Brief and StoryKey as plain values (what a worker sends back)."""
    brief, key = brief_of(record), story_key(record, ranking, rules)
    return (brief.guid, record.published.isoformat(), brief.title, brief.words,
            brief.provider_key, key.score, key.topics, key.filtered_by)  # fmt: skip


def _briefed(
    values: Sequence[Any],
    encoded: bytes | memoryview | None,
    origin: str,
    stored: str,
    share: Callable[[Any, Any], Any],
) -> Briefed:
    """The Briefed of `_brief_values`; without `encoded`, read back from the parse cache
    by the key it is `stored` under."""
    guid, published, title, words, provider_key, score, topics, failed = values
    moment = datetime.fromisoformat(published)
    provider_key, topics = share(provider_key, provider_key), share(topics, topics)
    brief = Brief(guid, moment, title, words, provider_key)
    key = StoryKey(score, moment.timestamp(), guid, provider_key, topics, failed)
    return Briefed(encoded, origin, brief, key, stored)


def _parse_briefly(
    load: Loader, ranking: RankingConfig, filters: tuple[FeedFilterConfig, ...],
    paths: Sequence[str],
) -> list[tuple[bytes, bool, bytes | None]]:
    """On a worker: each file's encoded result, whether it may be cached, and when it is
    one record and nothing else, that record's brief and key (marshalled)."""
    rules = FeedRules.of(filters)  # compiled once for a chunk of files
    parsed = []
    for path in paths:
        result = load(path)
        brief = None
        if _briefly(result):
            brief = marshal.dumps(_brief_values(result.records[0], ranking, rules))
        parsed.append((encode_result(result), cacheable(result), brief))
    return parsed
