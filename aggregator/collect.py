"""Stage: read every source into records (parse, validate, filter), from the parse cache
where a file is unchanged, holding a source's last records where its files cannot be
trusted now, and fetching (or, with PostgreSQL state, reading) the remote sources.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial

from aggregator.config import Config
from aggregator.errors import Problem
from aggregator.filters import first_match, source_rules
from aggregator.model import DocumentResult, Record
from aggregator.parallel import Loader, WorkerPool, parse_files, worker_count
from aggregator.progress import Progress, progress_for
from aggregator.sources.files import FoundFiles, find_files
from aggregator.sources.results import FetchStats, RemoteCollection
from aggregator.state import StateStore, open_read_only
from aggregator.state.codec import Undecodable
from aggregator.state.parse_cache import ParseCache
from aggregator.state.record_codec import decode_result
from aggregator.validate import RecordDefaults, load_record_file


@dataclass(frozen=True, slots=True)
class Collection:
    """Everything read from the sources, before merging."""

    records: tuple[Record, ...]
    problems: tuple[Problem, ...]
    documents: int
    unpublished: int
    parsed: int = 0  # files read and parsed (the others came from the parse cache)
    fetch: FetchStats = field(default_factory=FetchStats)
    # Left out by a source's filters: (record, the rule), and files its globs exclude.
    filtered: tuple[tuple[Record, str], ...] = ()
    excluded_files: int = 0
    held: int = 0  # sources whose last records were kept (unreadable, or shrank too far)


def _owner(found: FoundFiles, result: DocumentResult) -> int:
    """The source a result kept from an earlier build belongs to (-1 for none)."""
    for record in result.records[:1]:
        for span in found.spans:
            if record.origin.startswith(span.root.rstrip(os.sep) + os.sep):
                return span.index
    return -1


def filter_by_source(
    config: Config, results: Sequence[DocumentResult], owners: Sequence[int]
) -> tuple[list[DocumentResult], list[tuple[Record, str]]]:
    """Each result without the records its source's filters leave out, and those records
    with the rule that left each out (a filtered record is not a problem)."""
    rules = source_rules(config.sources)
    if not any(rules):
        return list(results), []
    kept_results, filtered = [], []
    for result, owner in zip(results, owners, strict=True):
        applied = rules[owner] if owner >= 0 else ()
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
        results, parsed = read_record_files(found.files, found.keys, load, cache, pool,
                                            finish=False)  # fmt: skip
    held = 0
    if cache is not None:
        held = _hold_sources(config, found, results, cache, store, accept_shrink)
        cache.finish()
    owners = [*found.sources, *(_owner(found, result) for result in results[len(found.files) :])]
    remote = _collect_remote(config, store, progress, persist)
    results.extend(remote.results)
    results, filtered = filter_by_source(config, results, [*owners, *remote.sources])
    if found.skipped:
        results.append(DocumentResult(problems=tuple(found.skipped)))
    return Collection(
        records=tuple(r for result in results for r in result.records),
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
    results: list[DocumentResult],
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
        now = sum(len(results[i].records) for i in range(span.start, span.end))
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
) -> tuple[list[DocumentResult], int]:
    """Each file's result, in order, from the cache when current; and how many were parsed.
    With `finish=False` the caller finishes the cache (after `_hold_sources`)."""
    results: list[DocumentResult | None] = [None] * len(files)
    misses: list[tuple[int, bytes | None]] = []
    for position, ((path, stamp), key) in enumerate(zip(files, keys, strict=True)):
        hit = None if cache is None else cache.lookup(key, stamp)
        if hit is not None:
            try:
                results[position] = decode_result(hit, path)
                continue
            except Undecodable:
                pass  # a damaged entry: parse the file again
        misses.append((position, stamp))
    fresh: list[tuple[str, bytes, bytes]] = []
    parsed = parse_files(load, [files[position][0] for position, _ in misses], pool)
    for (position, stamp), (encoded, may_cache) in zip(misses, parsed, strict=True):
        results[position] = decode_result(encoded, files[position][0])
        if cache is not None and may_cache and stamp is not None:
            fresh.append((keys[position], stamp, encoded))
            if len(fresh) == SAVE_BATCH:
                cache.save(fresh)
                fresh = []
    if cache is not None:
        cache.save(fresh)
        if finish:
            cache.finish()
    return results, len(misses)  # type: ignore[return-value]
