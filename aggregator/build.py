"""The build pipeline: sources -> records -> merge -> rank -> render -> publish."""

from __future__ import annotations

import gc
import hashlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from aggregator.cache import (
    FeedCache,
    ParseCache,
    ReadOnlyParseCache,
    Snapshot,
    decode_result,
    feed_inputs,
    file_stamp,
    file_stamps,
    program_fingerprint,
    settings_digest,
)
from aggregator.config import Config, SourceConfig, locate
from aggregator.errors import ConfigError, ConfigErrors, Problem
from aggregator.merge import merge_duplicates
from aggregator.parallel import Loader, WorkerPool, parse_files, worker_count
from aggregator.progress import Progress, progress_for
from aggregator.publish import (
    UnsafePath,
    remove_if_unchanged,
    remove_stale_temp_files,
    target_path,
    write_if_changed,
)
from aggregator.rank import FeedPlan, Topic, extend_plans, plan_feeds
from aggregator.records import DocumentResult, Record, RecordDefaults, load_record_file
from aggregator.remote_results import FetchStats, RemoteCollection
from aggregator.render.feeds import STYLESHEET_NAME, FeedSummary
from aggregator.render.html import page_path
from aggregator.render.opml import OPML_NAME
from aggregator.render.site import RenderJob, feed_files, render_job, render_site_list
from aggregator.sources import scan_record_files
from aggregator.state import StateStore
from aggregator.topics import spelling_counts, topic_key
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
    parsed: int = 0  # files read and parsed; the rest came from the parse cache
    rendered: int = 0  # output files rendered; the rest were current already
    fetch: FetchStats = field(default_factory=FetchStats)

    def summary(self) -> str:
        remote = f"; {self.fetch.summary()}" if self.fetch.sources else ""
        return (
            f"{plural(self.records, 'record')} from {plural(self.documents, 'file')} "
            f"({self.parsed} parsed): {self.rejected} rejected, "
            f"{self.unpublished} unpublished, {plural(self.duplicates, 'duplicate')} merged; "
            f"{plural(self.items, 'story', 'stories')} in {plural(self.feeds // 2, 'feed')}; "
            f"rendered {self.rendered} and wrote {self.written} of "
            f"{plural(self.files, 'file')} in {self.seconds:.2f} s{remote}"
        )


def _source_files(
    source: SourceConfig, index: int, config: Config, skipped: list[Problem]
) -> list[tuple[str, os.stat_result | None]]:
    assert source.path is not None
    if not source.path.is_dir():
        key = f"sources[{index}].path"
        raise ConfigError(str(config.path), key,
                          f"expected an existing directory, {source.path} is not one",
                          line=locate(config.path, key))  # fmt: skip

    def on_skip(path: Path, reason: str) -> None:
        reason, _, action = reason.rpartition("; ")
        skipped.append(Problem(str(path), None, None, reason, action, "warning"))

    return scan_record_files(source.path, on_skip)


@dataclass(frozen=True, slots=True)
class FoundFiles:
    """The record files of every `path` source, with their stats and parse-cache keys."""

    files: list[tuple[str, os.stat_result | None]]
    keys: list[str]
    skipped: list[Problem]  # links not followed (warnings)


def find_files(config: Config) -> FoundFiles:
    found = FoundFiles([], [], [])
    missing = []
    for index, source in enumerate(config.sources, 1):  # sources[1] is the first
        if source.path is None:
            continue  # remote: fetched in collect
        try:
            files = _source_files(source, index, config, found.skipped)
        except ConfigError as error:
            missing.append(error)  # every missing folder in one run, not one per run
            continue
        # Cache keys are absolute paths, whatever folder the build is started from.
        root, absolute = str(source.path), ParseCache.key(os.path.abspath(source.path))
        found.files.extend(files)
        found.keys.extend(absolute + path[len(root) :] for path, _ in files)
    if missing:
        raise missing[0] if len(missing) == 1 else ConfigErrors(missing)
    return found


def collect(
    config: Config,
    cache: ParseCache | None = None,
    *,
    found: FoundFiles | None = None,
    store: StateStore | None = None,
    progress: Progress | None = None,
    persist: bool = True,
    pool: WorkerPool | None = None,
) -> Collection:
    """Read every source. Bad input becomes Problems; it never raises for content.

    With a cache, files whose size and mtime are unchanged are not read again. Remote
    sources use `store` for their fetch cache (or open the state file themselves).
    """
    found = found or find_files(config)
    load = partial(load_record_file, defaults=RecordDefaults.from_config(config))
    with ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        results, parsed = read_record_files(found.files, found.keys, load, cache, pool)
    remote = _collect_remote(config, store, progress, persist)
    results.extend(remote.results)
    if found.skipped:
        results.append(DocumentResult(problems=tuple(found.skipped)))
    return Collection(
        records=tuple(r for result in results for r in result.records),
        problems=tuple(p for result in results for p in result.problems),
        documents=len(found.files) + len(remote.results),
        unpublished=sum(result.unpublished for result in results),
        parsed=parsed,
        fetch=remote.stats,
    )


def _collect_remote(
    config: Config, store: StateStore | None, progress: Progress | None, persist: bool
) -> RemoteCollection:
    if not any(source.url for source in config.sources):
        return RemoteCollection()
    from aggregator.remote_sources import collect_remote, collect_remote_sources  # HTTP stack

    progress = progress or progress_for(sys.stderr)
    defaults = RecordDefaults.from_config(config)
    if store is None:
        return collect_remote_sources(config, progress, persist, defaults)
    return collect_remote(config, store, progress, persist=persist, defaults=defaults)


WRITE_THREADS = 4  # output files written at once (their fsyncs overlap)
MIN_FEEDS_PER_WORKER = 8  # feeds to render before worker processes pay for themselves
SAVE_BATCH = 1_000  # cache entries written per statement batch (bounds memory)


def read_record_files(
    files: Sequence[tuple[str, os.stat_result | None]],
    keys: Sequence[str],
    load: Loader,
    cache: ParseCache | None,
    pool: WorkerPool,
) -> tuple[list[DocumentResult], int]:
    """Each file's result, in order, from the cache when current; and how many were parsed."""
    results: list[DocumentResult | None] = [None] * len(files)
    misses: list[tuple[int, bytes | None]] = []
    for position, ((path, stat), key) in enumerate(zip(files, keys, strict=True)):
        stamp = None if stat is None else file_stamp(stat.st_size, stat.st_mtime_ns)
        hit = None if cache is None else cache.lookup(key, stamp)
        if hit is not None:
            try:
                results[position] = decode_result(hit, path)
                continue
            except (ValueError, TypeError, EOFError, IndexError):
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
) -> BuildReport:
    """Run the whole pipeline; with `write=False` only read and check (nothing is written).

    A build remembers parsed files and rendered feeds in the state store and reuses
    them while they are current; `full=True` ignores what it remembers. `progress`
    shows fetching; by default a bar on stderr when it is a terminal.
    """
    started = clock()
    output = output_dir or config.site.output_dir
    key = "site.output_dir" if output_dir is None else "--output"
    with _collector_paused():  # the records die inside, before collection resumes
        try:
            report = _run(config, output, write=write, full=full, progress=progress)
        except OSError as exc:
            # An output folder we cannot write is a setting to fix, not a crash.
            reason = f"expected a writable folder; {exc.filename or output}: {exc.strerror or exc}"
            raise ConfigError(str(config.path), key, reason) from None
    return replace(report, seconds=clock() - started)


def _run(
    config: Config, output: Path, *, write: bool, full: bool, progress: Progress | None
) -> BuildReport:
    program = program_fingerprint()
    notes: list[Problem] = []
    with ExitStack() as stack:
        store = stack.enter_context(_open_state(config, notes)) if write else None
        # Started only when a stage has enough work; kept for the rest of the build.
        pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        context = _parse_context(config, program)
        found = find_files(config)
        stamps = None if store is None else file_stamps(config, found.keys, found.files)
        settings = settings_digest(config, context, output)
        snapshot = None
        if store is not None and stamps is not None and not full:
            snapshot = Snapshot.load(store, settings)
        report = None
        if store is not None and snapshot is not None and stamps is not None:
            report = _rerun(snapshot, stamps, store, output, found) or _add_files(
                config, store, output, snapshot, stamps, found, program, pool
            )
        if report is None:
            report = _build_all(config, output, store, found, context, program, pool,
                                full=full, progress=progress, write=write)  # fmt: skip
            if store is not None and report.snapshot is not None and stamps is not None:
                replace(report.snapshot, settings=settings, stamps=stamps).save(store)
            elif store is not None:
                Snapshot.forget(store)
    return replace(report.report, problems=(*notes, *report.report.problems))


@dataclass(frozen=True, slots=True)
class _Outcome:
    report: BuildReport
    snapshot: Snapshot | None = None  # what the next build may start from


def _rerun(
    snapshot: Snapshot, stamps: dict[str, bytes], store: StateStore, output: Path, found: FoundFiles
) -> _Outcome | None:
    """The same files, settings and program as the last build, its output untouched:
    that build again, without reading, ranking or rendering anything."""
    if snapshot.stamps != stamps or not FeedCache(store, output).all_current():
        return None
    remove_stale_temp_files(output)
    problems = (*snapshot.problems, *found.skipped)
    rejected = sum(1 for p in problems if p.severity == "error")
    return _Outcome(BuildReport(**snapshot.counts, rejected=rejected, written=0, problems=problems))


def _add_files(
    config: Config,
    store: StateStore,
    output: Path,
    snapshot: Snapshot,
    stamps: dict[str, bytes],
    found: FoundFiles,
    program: bytes,
    pool: WorkerPool,
) -> _Outcome | None:
    """The last build's files are all unchanged and some were added: read only the new
    ones and extend each feed's chosen items. None (do it all) when a new story is a
    duplicate or changes how an existing topic is shown."""
    new_keys = snapshot.added(stamps)
    if not new_keys:
        return None
    wanted = set(new_keys)
    positions = [i for i, key in enumerate(found.keys) if key in wanted]
    paths = [found.files[i][0] for i in positions]
    load = partial(load_record_file, defaults=RecordDefaults.from_config(config))
    results, fresh = [], []
    for position, path, (encoded, may_cache) in zip(
        positions, paths, parse_files(load, paths, pool), strict=True
    ):
        results.append(decode_result(encoded, path))
        if may_cache:
            fresh.append((found.keys[position], stamps[found.keys[position]], encoded))
    ParseCache.add(store, fresh)  # a fallback to the full build finds them parsed
    new = [record for result in results for record in result.records]
    guids = {record.guid for record in new}
    if len(guids) < len(new) or not guids.isdisjoint(snapshot.guids):
        return None
    extended = extend_plans(
        snapshot.plans, snapshot.spellings, new, config.ranking, config.feeds.max_items
    )
    if extended is None:
        return None
    plans, topics, spellings = extended
    names = {key: topic.name for key, topic in topics.items()}
    refused: list[Problem] = []
    feed_cache = FeedCache(store, output)
    written, rendered, files = publish(
        config, plans, names, output, feed_cache, program, refused, pool
    )
    order = {path: i for i, (path, _) in enumerate(found.files)}
    problems = sorted(
        (*snapshot.problems, *(p for result in results for p in result.problems)),
        key=lambda problem: order.get(problem.origin, len(order)),
    )
    unpublished = sum(result.unpublished for result in results)
    counts = dict(snapshot.counts)
    counts.update(
        documents=counts["documents"] + len(paths),
        records=counts["records"] + len(new),
        unpublished=counts["unpublished"] + unpublished,
        items=counts["items"] + len(new),
        feeds=2 * len(plans),
        files=files,
    )
    shown = (*problems, *found.skipped, *refused)
    report = BuildReport(
        **counts,
        rejected=sum(1 for p in shown if p.severity == "error"),
        written=len(written),
        problems=shown,
        written_paths=tuple(written),
        parsed=len(paths),
        rendered=rendered,
    )
    after = Snapshot(snapshot.settings, stamps, counts, tuple(problems),
                     snapshot.guids | guids, spellings, tuple(plans))  # fmt: skip
    after.save(store)
    return _Outcome(report)


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
) -> _Outcome:
    written: list[Path] = []
    refused: list[Problem] = []
    rendered = files = 0
    cache = None if store is None else ParseCache(store, context, full=full)
    collection = collect(config, cache, found=found, store=store, progress=progress,
                         persist=write, pool=pool)  # fmt: skip
    stories, duplicates, plans, topics = curate(config, collection.records)
    names = {key: topic.name for key, topic in topics.items()}
    if write:
        feed_cache = None if store is None else FeedCache(store, output, full=full)
        written, rendered, files = publish(
            config, plans, names, output, feed_cache, program, refused, pool
        )
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
        parsed=collection.parsed,
        rendered=rendered,
        fetch=collection.fetch,
    )
    if not write or collection.fetch.sources:
        return _Outcome(report)
    skipped = set(found.skipped)
    snapshot = Snapshot(
        settings=b"",  # filled in by the caller, which knows the settings and stamps
        stamps={},
        counts={name: getattr(report, name) for name in Snapshot.COUNTS},
        problems=tuple(p for p in collection.problems if p not in skipped),
        guids=frozenset(story.guid for story in stories),
        spellings=spelling_counts(topic for story in stories for topic in story.topics),
        plans=tuple(plans),
    )
    return _Outcome(report, snapshot)


def curate(
    config: Config, records: Sequence[Record]
) -> tuple[list[Record], int, list[FeedPlan], dict[str, Topic]]:
    """Merge duplicates, rank, and choose each feed's items: the stories, how many
    duplicates were merged, the feeds' plans and the topics."""
    stories, duplicates = merge_duplicates(records)
    plans, topics = plan_feeds(stories, config.ranking, config.feeds.max_items)
    return stories, duplicates, plans, topics


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
        if any(source.url for source in config.sources) and not config.build.state_path.exists():
            store = stack.enter_context(StateStore.open(Path(":memory:")))
        cache = None
        saved = StateStore.open_read_only(config.build.state_path)
        if saved is not None:
            stack.enter_context(saved)
            try:
                cache = ReadOnlyParseCache(saved, _parse_context(config, program_fingerprint()))
            except sqlite3.Error:
                cache = None  # a build is changing it right now: read every file
        pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        collection = collect(config, cache, store=store, progress=progress, persist=False,
                             pool=pool)  # fmt: skip
    stories, duplicates, plans, topics = curate(config, collection.records)
    names = {key: topic.name for key, topic in topics.items()}
    return SitePlan(collection, len(stories), duplicates, plans, names)


def publish(
    config: Config,
    plans: Sequence[FeedPlan],
    names: dict[str, str],
    output: Path,
    feed_cache: FeedCache | None,
    program: bytes,
    refused: list[Problem],
    pool: WorkerPool,
) -> tuple[list[Path], int, int]:
    """Render and write every output file whose inputs changed.

    Returns the paths written, how many files were rendered and how many the site has;
    a file whose path would leave the output folder is not written but added to `refused`.
    Feeds are rendered on the worker processes when there are enough of them; only
    this process writes (a killed build leaves no worker writing behind it). Writes run
    on threads: each waits on fsync, which releases the interpreter, so they overlap
    with each other and with rendering.
    """
    remove_stale_temp_files(output)
    work = _plan_rendering(config, plans, names, feed_cache, program)
    render = partial(render_job, config.site, names, work.feeds)
    if pool.pays(sum(job.feeds for job in work.jobs), MIN_FEEDS_PER_WORKER):
        results = pool.map(render, work.jobs, chunk=2)  # the shared arguments travel once a chunk
    else:
        results = map(render, work.jobs)
    pages = {page_path(job.plan) for job in work.jobs}
    writes: list[tuple[str, bytes, int, Future[tuple[Path, bool, bytes]]]] = []
    with ThreadPoolExecutor(WRITE_THREADS) as writer:

        def put(files: dict[str, bytes], inputs: bytes, page_inputs: bytes) -> None:
            for relative, data in files.items():
                digest = page_inputs if relative in pages else inputs
                future = writer.submit(_write_file, output, relative, data)
                writes.append((relative, digest, len(data), future))

        for files, inputs, page_inputs in zip(results, work.inputs, work.page_inputs, strict=True):
            put(files, inputs, page_inputs)
        if work.site_list:
            put(render_site_list(config.site, work.feeds), work.site_inputs, b"")
    written = []
    for relative, inputs, size, future in writes:
        try:
            target, changed, sha256 = future.result()
        except UnsafePath as exc:
            refused.append(Problem(str(output / relative), None, None, exc.reason,
                                   "file not written"))  # fmt: skip
            continue
        if changed:
            written.append(target)
        if feed_cache is not None:
            feed_cache.rendered(relative, inputs, sha256, size)
    if feed_cache is not None:
        # A topic that is gone takes its files with it (only files we made, unchanged).
        for relative, sha256, size in feed_cache.stale():
            remove_if_unchanged(output, relative, sha256, size)
        feed_cache.finish()  # only once every file is on disk
    return written, work.rendered, work.total


def _write_file(output: Path, relative: str, data: bytes) -> tuple[Path, bool, bytes]:
    """On a writer thread (the path checks, the write and the hash all wait on the system,
    away from the thread that collects rendered files): the file's path, whether its
    bytes changed, and their SHA-256 for the feed cache. UnsafePath if it would leave
    the output folder."""
    target = target_path(output, relative)
    return target, write_if_changed(target, data), hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class _Rendering:
    """What a build must render: the jobs, and the inputs digest each file is made from."""

    jobs: list[RenderJob]
    inputs: list[bytes]  # of each job's feed files
    page_inputs: list[bytes]  # of each job's page
    site_inputs: bytes  # of the OPML list and the stylesheet
    site_list: bool  # whether the OPML list and stylesheet are rendered
    feeds: list[FeedSummary]
    rendered: int  # files to render
    total: int  # files the site has


def _plan_rendering(
    config: Config,
    plans: Sequence[FeedPlan],
    names: dict[str, str],
    feed_cache: FeedCache | None,
    program: bytes,
) -> _Rendering:
    def current(relatives: Sequence[str], inputs: bytes) -> bool:
        return feed_cache is not None and all(feed_cache.is_current(r, inputs) for r in relatives)

    digests = [feed_inputs(program, config.site, plan, names) for plan in plans]
    # The index and the OPML list show every feed: they change when any feed does.
    site_digest = hashlib.sha256(repr([plan.total for plan in plans]).encode())
    for digest in digests:
        site_digest.update(digest)
    site_inputs = site_digest.digest()
    folders = {plan.topic.key: plan.directory for plan in plans if plan.topic is not None}

    def page_inputs(plan: FeedPlan, digest: bytes) -> bytes:
        """A topic page shows its feed's items, its total and links to their topics."""
        if plan.topic is None:
            return site_inputs
        links = [folders.get(topic_key(name)) for item in plan.items for name in item.topics]
        return hashlib.sha256(digest + repr((plan.total, links)).encode()).digest()

    jobs, inputs, pages = [], [], []
    for plan, digest in zip(plans, digests, strict=True):
        page = page_inputs(plan, digest)
        job = RenderJob(plan, feeds=not current(feed_files(plan), digest),
                        page=not current([page_path(plan)], page))  # fmt: skip
        if job.feeds or job.page:
            jobs.append(job)
            inputs.append(digest)
            pages.append(page)
    shared = [OPML_NAME, STYLESHEET_NAME]
    site_list = not current(shared, site_inputs)
    return _Rendering(
        jobs=jobs,
        inputs=inputs,
        page_inputs=pages,
        site_inputs=site_inputs,
        site_list=site_list,
        feeds=[FeedSummary.of(plan) for plan in plans],
        rendered=sum(3 * job.feeds + job.page for job in jobs) + len(shared) * site_list,
        total=4 * len(plans) + len(shared),
    )


def _parse_context(config: Config, program: bytes) -> bytes:
    """What parse results depend on besides the file itself."""
    sources = tuple(_source_identity(source) for source in config.sources)
    return program + repr((config.records, config.limits, sources)).encode()


def _source_identity(source: SourceConfig) -> SourceConfig:
    """The source as seen from any working folder (a relative path names the same files)."""
    if source.path is None:
        return source
    absolute = Path(os.path.abspath(source.path))
    name = str(absolute) if source.name == str(source.path) else source.name
    return replace(source, path=absolute, name=name)


@contextmanager
def _open_state(config: Config, notes: list[Problem]) -> Iterator[StateStore]:
    """The state store; a corrupt one is rebuilt with a warning, an unusable place is a
    config error."""
    path = config.build.state_path

    def warn(message: str) -> None:
        notes.append(Problem(str(path), None, None, message.removeprefix(f"{path}: "),
                             "starting with an empty cache", "warning"))  # fmt: skip

    try:
        store = StateStore.open(path, warn)
    except (OSError, sqlite3.Error) as exc:
        raise unusable_state(config, exc) from None
    with store:
        yield store


def unusable_state(config: Config, exc: Exception) -> ConfigError:
    reason = f"expected a usable state file; {config.build.state_path}: {exc}"
    return ConfigError(str(config.path), "build.state_path", reason)


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
