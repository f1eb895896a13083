"""The build pipeline: sources -> records -> merge -> rank -> render -> publish."""

from __future__ import annotations

import gc
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from aggregator.cluster import Clustering, cluster
from aggregator.config import Config, FilterConfig, SourceConfig, locate
from aggregator.delta import apply_changes
from aggregator.errors import ConfigError, ConfigErrors, Problem, StateUnavailable
from aggregator.filters import FeedRules, compile_rules, first_match, path_allowed
from aggregator.incremental import Decision, Redo, decide
from aggregator.model import DocumentResult, Record
from aggregator.output import publish
from aggregator.output.changes import Uploads, local_changes
from aggregator.output.folder import remove_stale_temp_files
from aggregator.parallel import Loader, WorkerPool, parse_files, worker_count
from aggregator.progress import Progress, progress_for
from aggregator.rank import FeedPlan, StoryKey, Topic, plan_keys, story_key
from aggregator.sources.folder import scan_record_files
from aggregator.sources.results import FetchStats, RemoteCollection
from aggregator.state import StateStore, memory_store, open_read_only, open_store
from aggregator.state.codec import Undecodable, decode_result
from aggregator.state.feed_cache import FeedCache
from aggregator.state.fingerprint import program_fingerprint, templates_digest
from aggregator.state.parse_cache import PARSE, ParseCache, ReadOnlyParseCache
from aggregator.state.snapshot import Snapshot, file_stamps, settings_digest
from aggregator.state.stories import StoryTable
from aggregator.validate import RecordDefaults, load_record_file
from aggregator.wording import plural


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


@dataclass(frozen=True, slots=True)
class BuildReport:
    documents: int
    records: int  # valid, published records read
    rejected: int  # problems that cost a record or a file
    unpublished: int
    duplicates: int
    items: int  # distinct stories after merging
    feeds: int  # RSS and Atom documents made
    written: int  # output files whose bytes changed
    files: int = 0  # every output file made: feeds, JSON Feeds, pages, OPML, stylesheet
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0
    written_paths: tuple[Path, ...] = field(default=())
    removed_paths: tuple[Path, ...] = ()  # files of topics that are gone, deleted
    # What changed where the site is published (relative paths): the files written and
    # removed, or with [site] output_url the objects put and deleted (output/changes.py).
    changed_paths: tuple[str, ...] = ()
    uploads: Uploads | None = None  # what object storage was given, with output_url
    parsed: int = 0  # files read and parsed; the rest came from the parse cache
    rendered: int = 0  # output files rendered; the rest were current already
    fetch: FetchStats = field(default_factory=FetchStats)
    filtered: int = 0  # records a source's filters left out, and files its globs exclude
    redo: str = "full"  # what the build redid: "nothing", "changes" or "full" (incremental.Redo)

    def summary(self) -> str:
        remote = f"; {self.fetch.summary()}" if self.fetch.sources else ""
        return (
            f"{plural(self.records, 'record')} from {plural(self.documents, 'file')} "
            f"({self.parsed} parsed): {self.rejected} rejected, "
            f"{self.unpublished} unpublished, {self.filtered} filtered, "
            f"{plural(self.duplicates, 'duplicate')} merged; "
            f"{plural(self.items, 'story', 'stories')} in {plural(self.feeds // 2, 'feed')}; "
            f"rendered {self.rendered} and wrote {self.written} of "
            f"{plural(self.files, 'file')} in {self.seconds:.2f} s{remote}"
        )


def _source_files(
    source: SourceConfig, index: int, config: Config, found: FoundFiles
) -> list[tuple[str, bytes | None]]:
    assert source.path is not None
    if not source.path.is_dir():
        key = f"sources[{index + 1}].path"  # counted from 1, as people count
        raise ConfigError(str(config.path), key,
                          f"expected an existing directory, {source.path} is not one",
                          line=locate(config.path, key))  # fmt: skip

    def on_skip(path: Path, reason: str) -> None:
        reason, _, action = reason.rpartition("; ")
        found.skipped.append(Problem(str(path), None, None, reason, action, "warning"))

    def on_error(path: Path, reason: str) -> None:
        # Its files are missing, not removed: their last records stay (see collect).
        reason = f"cannot read this folder: {reason}"
        action = "kept the records its files gave at the last build"
        found.skipped.append(Problem(str(path), None, None, reason, action))
        folder = ParseCache.key(os.path.abspath(source.path)) + str(path)[len(str(source.path)) :]
        found.unreadable.append((folder.rstrip(os.sep) + os.sep, str(source.path), index))

    return scan_record_files(source.path, on_skip, on_error)


@dataclass(frozen=True, slots=True)
class SourceSpan:
    """Where one `path` source's files are in FoundFiles, and its parse-cache key prefix."""

    index: int  # in config.sources
    start: int
    end: int
    prefix: str  # ParseCache key of the folder, with a trailing separator
    root: str  # the folder as configured (origins are shown relative to it)


@dataclass(frozen=True, slots=True)
class FoundFiles:
    """The record files of every `path` source, with their stats and parse-cache keys."""

    files: list[tuple[str, bytes | None]]
    keys: list[str]
    skipped: list[Problem]  # links not followed (warnings), folders not readable (errors)
    sources: list[int] = field(default_factory=list)  # each file's index in config.sources
    excluded: list[int] = field(default_factory=lambda: [0])  # files left out by globs
    unreadable: list[tuple[str, str, int]] = field(default_factory=list)  # key prefix, root, source
    spans: list[SourceSpan] = field(default_factory=list)


def find_files(config: Config) -> FoundFiles:
    found = FoundFiles([], [], [])
    missing = []
    for index, source in enumerate(config.sources):
        if source.path is None:
            continue  # remote: fetched in collect
        start = len(found.files)
        try:
            files = _source_files(source, index, config, found)
        except ConfigError as error:
            missing.append(error)  # every missing folder in one run, not one per run
            continue
        # Cache keys name the folder by its absolute path, whatever folder the build is
        # started from (ParseCache.key), and the file by its path inside it.
        root, absolute = str(source.path), ParseCache.key(os.path.abspath(source.path))
        if source.include or source.exclude:
            cut = len(root) + 1
            kept = [entry for entry in files
                    if path_allowed(entry[0][cut:].replace(os.sep, "/"),
                                    source.include, source.exclude)]  # fmt: skip
            found.excluded[0] += len(files) - len(kept)
            files = kept
        found.files.extend(files)
        found.keys.extend(absolute + path[len(root) :] for path, _ in files)
        found.sources.extend([index] * len(files))
        prefix = absolute.rstrip(os.sep) + os.sep
        found.spans.append(SourceSpan(index, start, len(found.files), prefix, root))
    if missing:
        raise missing[0] if len(missing) == 1 else ConfigErrors(missing)
    return found


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
    rules = [compile_rules(source.filters, f"sources[{index + 1}]")
             for index, source in enumerate(config.sources)]  # fmt: skip
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
        excluded_files=found.excluded[0],
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
    for prefix, root, index in found.unreadable:
        source_prefix = ParseCache.key(os.path.abspath(root)).rstrip(os.sep) + os.sep
        for key, result in cache.left_under(prefix):
            results.append(_with_origin(result, root + os.sep + key[len(source_prefix) :]))
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
            results.append(_with_origin(result, span.root + os.sep + key[len(span.prefix) :]))
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


def build(
    config: Config,
    output_dir: Path | None = None,
    *,
    write: bool = True,
    full: bool = False,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
    accept_shrink: bool = False,
) -> BuildReport:
    """Run the whole pipeline; with `write=False` only read and check (nothing is written).

    A build remembers parsed files and rendered feeds in the state store and reuses
    them while they are current; `full=True` ignores what it remembers. `progress`
    shows fetching; by default a bar on stderr when it is a terminal. With
    `[site] output_url` the output folder is then copied to object storage.
    """
    started = clock()
    output = output_dir or config.site.output_dir
    key = "site.output_dir" if output_dir is None else "--output"
    bucket = None
    if write and config.storage is not None:
        from aggregator.output.storage import Bucket  # s3fs loads only for a bucket

        bucket = Bucket.open(config)  # bad settings stop the build before it writes
    with _collector_paused():  # the records die inside, before collection resumes
        try:
            report = _run(config, output, write=write, full=full, progress=progress,
                          accept_shrink=accept_shrink)  # fmt: skip
        except OSError as exc:
            # An output folder we cannot write is a setting to fix, not a crash.
            reason = f"expected a writable folder; {exc.filename or output}: {exc.strerror or exc}"
            raise ConfigError(str(config.path), key, reason) from None
    changed = local_changes(output, report.written_paths, report.removed_paths)
    report = replace(report, changed_paths=changed)
    if bucket is not None:
        with _open_state(config, []) as store:
            uploads = bucket.sync(output, store, full=full)
        report = replace(report, uploads=uploads, changed_paths=uploads.changed)
    return replace(report, seconds=clock() - started)


def _run(
    config: Config,
    output: Path,
    *,
    write: bool,
    full: bool,
    progress: Progress | None,
    accept_shrink: bool = False,
) -> BuildReport:
    program = _program(config)
    notes: list[Problem] = []
    with ExitStack() as stack:
        store = stack.enter_context(_open_state(config, notes)) if write else None
        # Started only when a stage has enough work; kept for the rest of the build.
        pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        context = _parse_context(config, program)
        found = find_files(config)
        settings = settings_digest(config, context, output)
        stamps, unstamped = file_stamps(found.keys, found.files)
        # What the state remembers (not read with --full, which uses none of it).
        snapshot = None if store is None or full else Snapshot.load(store)
        intact = (
            store is not None and snapshot is not None and FeedCache(store, output).all_current()
        )
        decision = decide(snapshot, stamps, settings, unstamped=unstamped,
                          remote=any(source.url for source in config.sources), full=full,
                          output_intact=intact, held=bool(found.unreadable),
                          stories=store is not None and StoryTable.remembered(store))  # fmt: skip
        if decision.redo is Redo.NOTHING:
            assert store is not None and snapshot is not None
            return replace(_rerun(snapshot, output, found).report, redo=Redo.NOTHING.value,
                           problems=(*notes, *snapshot.problems, *found.skipped))  # fmt: skip
        report = None
        if decision.redo is Redo.CHANGES:
            assert store is not None and snapshot is not None
            report = _build_changes(config, output, store, found, decision, snapshot, program,
                                    pool, accept_shrink)  # fmt: skip
        if report is None:
            if store is not None and snapshot is not None:
                # What the state remembers is about to change: a build killed half-way
                # must leave the next one nothing to compare with but a full build.
                with store.transaction():
                    Snapshot.forget(store)
                    StoryTable.forget(store)
            # The parse cache keeps a full build cheap for the files that did not change.
            report = _build_all(config, output, store, found, context, program, pool,
                                full=full, progress=progress, write=write,
                                accept_shrink=accept_shrink)  # fmt: skip
            if store is not None and report.snapshot is not None and decision.remember:
                with store.transaction():
                    if report.table is not None:
                        report.table.save(store, everything=True)
                    replace(report.snapshot, settings=settings, stamps=stamps).save(store)
            elif store is not None:
                Snapshot.forget(store)
        else:
            with store.transaction():  # type: ignore[union-attr]
                replace(report.snapshot, settings=settings, stamps=stamps).save(store)  # type: ignore[arg-type,union-attr]
    return replace(report.report, problems=(*notes, *report.report.problems))


@dataclass(frozen=True, slots=True)
class _Outcome:
    report: BuildReport
    snapshot: Snapshot | None = None  # what the next build may start from
    table: StoryTable | None = None  # the stories, for the next build to apply changes to


def _rerun(snapshot: Snapshot, output: Path, found: FoundFiles) -> _Outcome:
    """The same files, settings and program as the last build, its output untouched
    (Redo.NOTHING): that build again, without reading, ranking or rendering anything."""
    remove_stale_temp_files(output)
    problems = (*snapshot.problems, *found.skipped)
    rejected = sum(1 for p in problems if p.severity == "error")
    return _Outcome(BuildReport(**snapshot.counts, rejected=rejected, written=0, problems=problems))


def _build_changes(
    config: Config,
    output: Path,
    store: StateStore,
    found: FoundFiles,
    decision: Decision,
    snapshot: Snapshot,
    program: bytes,
    pool: WorkerPool,
    accept_shrink: bool,
) -> _Outcome | None:
    """Redo.CHANGES: the changed files applied to the last build's stories
    (aggregator.delta). None when that cannot be done exactly (the state does not fit,
    or a source shrank past the guard): the caller then builds in full."""
    import aggregator.render.site  # noqa: F401  (this path renders)

    table = StoryTable.load(store)
    if table is None:
        return None
    counts = {key: int(value or 0) for key, value in store.items(SOURCES).items()}
    load = partial(load_record_file, defaults=RecordDefaults.from_config(config))
    try:
        delta = apply_changes(config, table, store, found, decision, load, pool,
                              snapshot.problems, snapshot.counts, counts)  # fmt: skip
    except (Undecodable, KeyError, IndexError, ValueError):
        return None  # the state does not hold what it should: a full build redoes it
    limit = config.build.max_shrink
    for span in found.spans:
        before, now = counts.get(span.prefix, 0), delta.source_counts.get(span.prefix, 0)
        if not accept_shrink and before >= SHRINK_FLOOR and now < before * (1 - limit):
            return None  # the full path holds the source and says why
    names = {key: topic.name for key, topic in delta.topics.items()}
    refused: list[Problem] = []
    feed_cache = FeedCache(store, output)
    published = publish(
        config, delta.plans, names, output, feed_cache, program, refused, pool, store
    )
    with store.transaction():
        store.put_many(PARSE, [(c.key, c.stamp + c.encoded) for c in delta.changes
                               if c.new is not None and c.encoded is not None
                               and c.stamp is not None])  # fmt: skip
        uncached = [c.key for c in delta.changes
                    if c.new is None or c.encoded is None or c.stamp is None]  # fmt: skip
        store.delete_many(PARSE, uncached)
        table.save(store)
        store.put_many(SOURCES, [(prefix, str(count).encode())
                                 for prefix, count in delta.source_counts.items()
                                 if counts.get(prefix) != count])  # fmt: skip
    problems = (*delta.problems, *found.skipped)
    report = BuildReport(
        documents=len(found.files),
        records=delta.records,
        rejected=sum(1 for p in problems if p.severity == "error") + len(refused),
        unpublished=delta.unpublished,
        duplicates=delta.records - delta.stories,
        items=delta.stories,
        feeds=2 * len(delta.plans),
        files=published.files,
        written=len(published.written),
        problems=(*problems, *refused),
        written_paths=tuple(published.written),
        removed_paths=tuple(published.removed),
        parsed=delta.parsed,
        rendered=published.rendered,
        filtered=delta.filtered + found.excluded[0],
        redo=Redo.CHANGES.value,
    )
    kept = Snapshot(b"", {}, {name: getattr(report, name) for name in Snapshot.COUNTS},
                    delta.problems)  # fmt: skip
    return _Outcome(report, kept, table)


def _build_all(
    config: Config,
    output: Path,
    store: StateStore | None,
    found: FoundFiles,
    context: bytes,
    program: bytes,
    pool: WorkerPool,
    *,
    full: bool,
    progress: Progress | None,
    write: bool,
    accept_shrink: bool = False,
) -> _Outcome:
    written: list[Path] = []
    removed: list[Path] = []
    refused: list[Problem] = []
    rendered = files = 0
    if write:
        # This path renders (publish): load the renderers before the worker pool forks
        # for parsing, so that the workers start with them as they did before.
        import aggregator.render.site  # noqa: F401
    cache = None if store is None else ParseCache(store, context, full=full)
    collection = collect(config, cache, found=found, store=store, progress=progress,
                         persist=write, pool=pool, accept_shrink=accept_shrink)  # fmt: skip
    curated = curate(config, collection)
    plans, names = curated.plans, curated.names
    stories, duplicates = curated.clustering.stories, curated.clustering.duplicates
    if write:
        feed_cache = None if store is None else FeedCache(store, output, full=full)
        published = publish(
            config, plans, names, output, feed_cache, program, refused, pool, store
        )
        written, rendered, files = published.written, published.rendered, published.files
        removed = published.removed
    report = BuildReport(
        documents=collection.documents,
        records=len(collection.records),
        rejected=sum(1 for p in collection.problems if p.severity == "error") + len(refused),
        unpublished=collection.unpublished,
        duplicates=duplicates,
        items=len(stories),
        feeds=2 * len(plans) if write else 0,
        files=files,
        written=len(written),
        problems=(*collection.problems, *refused),
        written_paths=tuple(written),
        removed_paths=tuple(removed),
        parsed=collection.parsed,
        rendered=rendered,
        fetch=collection.fetch,
        filtered=len(collection.filtered) + collection.excluded_files,
    )
    if not write or collection.fetch.sources or collection.held:
        return _Outcome(report)  # a held source is looked at again by the next build
    skipped = set(found.skipped)
    snapshot = Snapshot(
        settings=b"",  # filled in by the caller, which knows the settings and stamps
        stamps={},
        counts={name: getattr(report, name) for name in Snapshot.COUNTS},
        problems=tuple(p for p in collection.problems if p not in skipped),
    )
    return _Outcome(report, snapshot, story_table(curated, collection, found))


def story_table(curated: Curation, collection: Collection, found: FoundFiles) -> StoryTable | None:
    """What the next build needs to apply changed files to this one's stories (see
    aggregator.delta); None when a record does not come from a file found (held)."""
    key_of = {path: key for (path, _), key in zip(found.files, found.keys, strict=True)}
    files: dict[str, set[str]] = {}
    for record in collection.records:
        key = key_of.get(record.origin)
        if key is None:
            return None
        files.setdefault(record.guid, set()).add(key)
    table = StoryTable(filtered=len(collection.filtered))
    for record, leader in curated.clustering.by_link:
        table.times.append(record.published.timestamp())
        table.guids.append(record.guid)
        table.files.append(tuple(sorted(files[record.guid])))
        table.leaders.append(leader)
    table.keys = {key.guid: key for key in curated.keys}
    return table


@dataclass(frozen=True, slots=True)
class Curation:
    """What a build decides from the records it read: the stories and every feed."""

    clustering: Clustering
    plans: list[FeedPlan]
    topics: dict[str, Topic]
    rules: FeedRules
    keys: tuple[StoryKey, ...] = ()  # every story's, in the order of clustering.stories

    @property
    def names(self) -> dict[str, str]:
        return {key: topic.name for key, topic in self.topics.items()}


def curate(config: Config, collection: Collection) -> Curation:
    """Merge copies into stories, then rank and choose each feed's items."""
    clustering = cluster(collection.records, config.clustering)
    rules = FeedRules.of(config.filters)
    keys = tuple(story_key(story, config.ranking, rules) for story in clustering.stories)
    key_plans, topics = plan_keys(keys, config.ranking, config.feeds.max_items, rules,
                                  config.feeds)  # fmt: skip
    by_guid = {story.guid: story for story in clustering.stories}
    plans = [FeedPlan(p.topic, tuple(by_guid[g] for g in p.guids), p.total) for p in key_plans]
    return Curation(clustering, plans, topics, rules, keys)


@dataclass(frozen=True, slots=True)
class SitePlan:
    """What a full build would publish, worked out without writing anything."""

    collection: Collection
    stories: int
    duplicates: int
    plans: list[FeedPlan]
    names: dict[str, str]  # topic key -> how the topic is shown

    def report(self, seconds: float = 0.0) -> BuildReport:
        """The counts of a build that wrote nothing."""
        problems = self.collection.problems
        return BuildReport(
            documents=self.collection.documents,
            records=len(self.collection.records),
            rejected=sum(1 for p in problems if p.severity == "error"),
            unpublished=self.collection.unpublished,
            duplicates=self.duplicates,
            items=self.stories,
            feeds=2 * len(self.plans),
            written=0,
            problems=problems,
            seconds=seconds,
            parsed=self.collection.parsed,
            fetch=self.collection.fetch,
        )


def plan_site(config: Config, progress: Progress | None = None) -> SitePlan:
    """Read every source and choose every feed's items, writing nothing, not even the
    state file (for `topics` and `build --dry-run`). Record files whose parse result the
    state file holds are not read again (the file is opened read-only and immutable:
    no journal, no lock). Remote sources use the stored fetch state when there is one
    (without updating it), else an empty one in memory."""
    with ExitStack() as stack:
        store = None
        shared = config.state.url is not None  # PostgreSQL: read the workers' records
        if (any(source.url for source in config.sources) and not shared
                and not config.build.state_path.exists()):  # fmt: skip
            store = stack.enter_context(memory_store())
        cache = None
        saved = open_read_only(config)
        if saved is not None:
            stack.enter_context(saved)
            store = saved if shared else store
            try:
                cache = ReadOnlyParseCache(saved, _parse_context(config, _program(config)))
            except (sqlite3.Error, StateUnavailable):
                cache = None  # a build is changing it right now: read every file
        pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        collection = collect(config, cache, store=store, progress=progress, persist=False,
                             pool=pool)  # fmt: skip
    curated = curate(config, collection)
    clustering = curated.clustering
    return SitePlan(
        collection, len(clustering.stories), clustering.duplicates, curated.plans, curated.names
    )


def _program(config: Config) -> bytes:
    """What made the output besides the settings and the records: this program, and the
    operator's own templates (they shape the pages as much as ours do)."""
    return program_fingerprint() + templates_digest(config.site.templates)


def _parse_context(config: Config, program: bytes) -> bytes:
    """What parse results depend on besides the file itself."""
    sources = tuple(_source_identity(source) for source in config.sources)
    return program + repr((config.records, config.limits, sources)).encode()


def _source_identity(source: SourceConfig) -> SourceConfig:
    """The source as seen from any working folder (a relative path names the same files)."""
    # Filters and globs choose among parse results; they change none (settings_digest).
    source = replace(source, include=(), exclude=(), filters=FilterConfig())
    if source.path is None:
        return source
    absolute = Path(os.path.abspath(source.path))
    name = str(absolute) if source.name == str(source.path) else source.name
    return replace(source, path=absolute, name=name)


@contextmanager
def _open_state(config: Config, notes: list[Problem]) -> Iterator[StateStore]:
    """The state store; a corrupt one is rebuilt with a warning, an unusable place is a
    config error."""

    def warn(message: str) -> None:
        where = config.build.state_path
        notes.append(Problem(str(where), None, None, message.removeprefix(f"{where}: "),
                             "starting with an empty cache", "warning"))  # fmt: skip

    with open_store(config, warn) as store:
        yield store


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while the pipeline runs.

    A build makes hundreds of thousands of long-lived objects and no cyclic garbage
    worth collecting; the collector would rescan them again and again (a third of the
    time of a cached build). They must be gone before it resumes, or its first pass
    scans them all once more.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
