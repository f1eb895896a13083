"""The build pipeline: decide what to redo, then carry it out.

    find files (sources/files.py) -> decide (incremental.py) ->
        nothing: the last build's report again
        changes: apply the changed files to the story table (delta.py) -> output/
        full:    collect.py (sources -> parse -> validate -> filter) -> curate.py
                 (merge, cluster, rank, choose) -> output/ (render, write, upload)

The stages a decision does not need are not imported: a rebuild with nothing changed
loads no parser, ranker or renderer.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import Config
from aggregator.errors import ConfigError, Problem
from aggregator.incremental import Decision, Redo, decide
from aggregator.parallel import MIN_FILES_PER_WORKER, WorkerPool, worker_count
from aggregator.progress import Progress
from aggregator.report import BuildReport
from aggregator.sources.files import FoundFiles, find_files
from aggregator.state import StateStore, open_store
from aggregator.state.feed_cache import FeedCache
from aggregator.state.fingerprint import parse_context, program_digest
from aggregator.state.snapshot import Snapshot, settings_digest
from aggregator.state.stories import RememberedFeed, StoryTable

if TYPE_CHECKING:
    from aggregator.output.publishing import Published
    from aggregator.rank import FeedPlan




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
    if report.written_paths or report.removed_paths:
        from aggregator.output.changes import local_changes

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
    program = program_digest(config)
    notes: list[Problem] = []
    with ExitStack() as stack:
        store = stack.enter_context(_open_state(config, notes)) if write else None
        # Started only when a stage has enough work; kept for the rest of the build.
        pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        context = parse_context(config, program)
        found = find_files(config)
        settings = settings_digest(config, context, output)
        # What the state remembers (not read with --full, which uses none of it).
        snapshot = None if store is None or full else Snapshot.load(store)
        intact = (
            store is not None and snapshot is not None and FeedCache(store, output).all_current()
        )
        decision = decide(snapshot, found.listings, settings, unstamped=found.unstamped,
                          remote=any(source.url for source in config.sources), full=full,
                          output_intact=intact, held=bool(found.unreadable),
                          stories=store is not None and StoryTable.remembered(store),
                          order=found.order_of)  # fmt: skip
        if decision.redo is Redo.NOTHING:
            assert store is not None and snapshot is not None
            return replace(_rerun(snapshot, output, found).report, redo=Redo.NOTHING.value,
                           problems=(*notes, *snapshot.problems, *found.skipped))  # fmt: skip
        report = None
        if decision.redo is Redo.CHANGES:
            assert store is not None and snapshot is not None
            report = _build_changes(config, output, store, found, decision, snapshot, program,
                                    pool, accept_shrink)  # fmt: skip
            full_table = False  # the changes path saved the days it changed itself
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
            full_table = True
        if store is not None and report.snapshot is not None and decision.remember:
            with store.transaction():
                if full_table and report.table is not None:
                    report.table.save(store, everything=True)
                kept = replace(report.snapshot, settings=settings, listings=found.listings)
                kept.save(store, snapshot)
        elif store is not None:
            Snapshot.forget(store)
    return replace(report.report, problems=(*notes, *report.report.problems))


@dataclass(frozen=True, slots=True)
class _Outcome:
    report: BuildReport
    snapshot: Snapshot | None = None  # what the next build may start from
    table: StoryTable | None = None  # the stories, for the next build to apply changes to


def _rerun(snapshot: Snapshot, output: Path, found: FoundFiles) -> _Outcome:
    """The same files, settings and program as the last build, its output untouched
    (Redo.NOTHING): that build again, without reading, ranking or rendering anything."""
    from aggregator.output.folder import remove_stale_temp_files

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
    # The stages this path runs (imported here: a rebuild with nothing changed needs none;
    # the renderers load only if a feed must be rendered, in output.publish).
    from aggregator.collect import SHRINK_FLOOR, SOURCES
    from aggregator.delta import apply_changes
    from aggregator.output.publishing import publish
    from aggregator.state.codec import Undecodable
    from aggregator.state.parse_cache import ParseCache
    from aggregator.validate import RecordDefaults, load_record_file

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
    for prefix in found.prefixes:
        before, now = counts.get(prefix, 0), delta.source_counts.get(prefix, 0)
        if not accept_shrink and before >= SHRINK_FLOOR and now < before * (1 - limit):
            return None  # the full path holds the source and says why
    names = {key: topic.name for key, topic in delta.topics.items()}
    refused: list[Problem] = []
    feed_cache = FeedCache(store, output)
    published = publish(
        config, delta.plans, names, output, feed_cache, program, refused, pool, store
    )
    with store.transaction():
        cached = [(c.key, c.stamp, c.encoded) for c in delta.changes
                  if c.new is not None and c.encoded is not None
                  and c.stamp is not None]  # fmt: skip
        ParseCache.add(store, cached)
        kept = {key for key, _, _ in cached}
        ParseCache.forget(store, [c.key for c in delta.changes if c.key not in kept])
        table.feeds = _rendered_feeds(delta.plans, names, published)
        table.save(store)
        store.put_many(SOURCES, [(prefix, str(count).encode())
                                 for prefix, count in delta.source_counts.items()
                                 if counts.get(prefix) != count])  # fmt: skip
    problems = (*delta.problems, *found.skipped)
    report = BuildReport(
        documents=found.count,
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
        filtered=delta.filtered + found.excluded,
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
    from aggregator.collect import collect
    from aggregator.curate import curate, story_table
    from aggregator.output.publishing import publish
    from aggregator.state.parse_cache import ParseCache

    written: list[Path] = []
    removed: list[Path] = []
    refused: list[Problem] = []
    rendered = files = 0
    published = None
    if write:
        # This path renders (publish): load the renderers before the worker pool forks
        # for parsing, so that the workers start with them as they did before.
        import aggregator.render.site  # noqa: F401
    if pool.pays(found.count, MIN_FILES_PER_WORKER):
        # Before the files are listed in order and the parse cache is loaded: the
        # workers start as copies of this process and need neither.
        pool.start()
    cache = None if store is None else ParseCache(store, context, full=full)
    collection = collect(config, cache, found=found, store=store, progress=progress,
                         persist=write, pool=pool, accept_shrink=accept_shrink)  # fmt: skip
    found.let_go_of_stamps()  # read: from here on the files are known by their keys
    curated = curate(config, collection)
    plans, names = curated.plans, curated.names
    stories, duplicates = curated.stories.briefs, curated.stories.duplicates
    if write:
        feed_cache = None if store is None else FeedCache(store, output, full=full)
        published = publish(
            config, plans, names, output, feed_cache, program, refused, pool, store
        )
        written, rendered, files = published.written, published.rendered, published.files
        removed = published.removed
    pool.close()  # nothing is left for the workers: their memory is better given back now
    report = BuildReport(
        documents=collection.documents,
        records=len(collection.read),
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
        listings={},
        counts={name: getattr(report, name) for name in Snapshot.COUNTS},
        problems=tuple(p for p in collection.problems if p not in skipped),
    )
    table = story_table(curated, collection, found)
    if table is not None and published is not None:
        table.feeds = _rendered_feeds(plans, names, published)
    return _Outcome(report, snapshot, table)


def _rendered_feeds(
    plans: Sequence[FeedPlan], names: dict[str, str], published: Published
) -> dict[str, RememberedFeed]:
    """What the story table remembers of each feed as rendered and chosen (see
    StoryTable.feeds)."""
    from aggregator.rank import feed_shapes

    shapes = feed_shapes(plans, names)
    chosen = {plan.directory: ("" if plan.topic is None else plan.topic.key, plan.guids,
                               plan.total) for plan in plans}  # fmt: skip
    return {directory: (shapes[directory], known.inputs, known.page_inputs, known.newest,
                        known.archive_pages, *chosen[directory])
            for directory, known in published.feeds.items()}  # fmt: skip


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
