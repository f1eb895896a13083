"""`publish`: render what changed and write it, in link order (see aggregator.output)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from aggregator import webhooks
from aggregator.archive import FeedChange, Histories
from aggregator.config import Config
from aggregator.errors import Problem, WriteFailed
from aggregator.output.folder import (
    UnsafePath,
    remove_if_unchanged,
    remove_stale_temp_files,
    write_file,
)
from aggregator.output.plan import plan_rendering
from aggregator.parallel import WorkerPool
from aggregator.rank import FeedPlan, KnownFeed
from aggregator.state import StateStore
from aggregator.state.feed_cache import FeedCache

WRITE_THREADS = 4  # output files written at once (their fsyncs overlap)
MIN_FEEDS_PER_WORKER = 8  # feeds to render before worker processes pay for themselves


@dataclass(frozen=True, slots=True)
class Published:
    """What publishing did to the output folder."""

    written: list[Path]  # files whose bytes changed
    rendered: int  # files rendered (the others were current already)
    files: int  # files the site has
    removed: list[Path]  # files of an earlier build that this one no longer makes
    feeds: dict[str, KnownFeed]  # what each feed was rendered from, by its directory


def publish(
    config: Config,
    plans: Sequence[FeedPlan],
    names: dict[str, str],
    output: Path,
    feed_cache: FeedCache | None,
    program: bytes,
    refused: list[Problem],
    pool: WorkerPool,
    store: StateStore | None = None,
) -> Published:
    """Render and write every output file whose inputs changed.

    Returns the paths written and removed, how many files were rendered and how many the
    site has; a file whose path would leave the output folder is not written but added
    to `refused`.
    Feeds are rendered on the worker processes when there are enough of them; only
    this process writes (a killed build leaves no worker writing behind it). Writes run
    on threads: each waits on fsync, which releases the interpreter, so they overlap
    with each other and with rendering.
    """
    from aggregator.render.paths import OPML_NAME, STYLESHEET_NAME, page_path

    remove_stale_temp_files(output)
    output.mkdir(parents=True, exist_ok=True)  # an unusable output folder is a config error
    changes = [] if store is None else _advance_histories(config, plans, names, store)
    archives = {change.plan.directory: len(change.history.pages) for change in changes}
    work = plan_rendering(config, plans, names, feed_cache, program, archives)
    # Archive documents first: the feeds written next link to them.
    written, rendered, total = _write_archives(
        config, changes, output, feed_cache, program, refused, store
    )
    results: Iterable[dict[str, bytes]] = ()
    site_list: dict[str, bytes] = {}
    if work.jobs or work.site_list:
        # The renderers (feedgen, lxml, jinja2) load here: a build that renders nothing
        # never imports them.
        from aggregator.render.site import render_job, render_site_list

        render = partial(render_job, config.site, names, work.feeds)
        if pool.pays(sum(job.feeds for job in work.jobs), MIN_FEEDS_PER_WORKER):
            results = pool.map(render, work.jobs, chunk=2)  # shared arguments: once a chunk
        else:
            results = map(render, work.jobs)
        if work.site_list:
            site_list = render_site_list(config.site, work.feeds)
    pages = {page_path(job.plan) for job in work.jobs}
    with ThreadPoolExecutor(WRITE_THREADS) as writer:
        writes: list[tuple[str, bytes, int, Future[tuple[Path, bool, bytes]]]] = []

        def put(relative: str, data: bytes, digest: bytes) -> None:
            future = writer.submit(write_file, output, relative, data)
            writes.append((relative, digest, len(data), future))

        def settle() -> None:
            """Wait for the writes so far; on a write error stop before anything that
            would link to what is missing."""
            try:
                _settle(writes, output, written, feed_cache, refused)
            finally:
                writes.clear()

        # Files that link to others are written after them: the stylesheet before the
        # feeds, every feed before the pages, topic pages before the front page, the
        # OPML list last. A build stopped by a full disk leaves no link to a missing feed.
        if STYLESHEET_NAME in site_list:
            put(STYLESHEET_NAME, site_list[STYLESHEET_NAME], work.site_inputs)
        held: list[tuple[str, bytes, bytes]] = []
        for files, inputs, page_inputs in zip(results, work.inputs, work.page_inputs, strict=True):
            for relative, data in files.items():
                if relative in pages:
                    held.append((relative, data, page_inputs))
                else:
                    put(relative, data, inputs)
        settle()
        held.sort(key=lambda page: page[0].count("/") == 0)  # the front page last
        for relative, data, digest in held:
            put(relative, data, digest)
        settle()
        if OPML_NAME in site_list:
            put(OPML_NAME, site_list[OPML_NAME], work.site_inputs)
        settle()
    removed = []
    if feed_cache is not None:
        # A topic that is gone takes its files with it (only files we made, unchanged).
        for relative, sha256, size in feed_cache.stale():
            if remove_if_unchanged(output, relative, sha256, size):
                removed.append(output / relative)
        feed_cache.finish()  # only once every file is on disk
    return Published(written, rendered + work.rendered, total + work.total, removed,
                     work.known)  # fmt: skip


def _settle(
    writes: list[tuple[str, bytes, int, Future[tuple[Path, bool, bytes]]]],
    output: Path,
    written: list[Path],
    feed_cache: FeedCache | None,
    refused: list[Problem],
) -> None:
    """Collect finished writes; the first write error cancels those not started and
    raises WriteFailed naming the file (the feed cache is not finished, so the next
    build writes whatever is missing)."""
    failure: WriteFailed | None = None
    for relative, inputs, size, future in writes:
        try:
            target, changed, sha256 = future.result()
        except UnsafePath as exc:
            refused.append(Problem(str(output / relative), None, None, exc.reason,
                                   "file not written"))  # fmt: skip
            continue
        except OSError as exc:
            if failure is None:
                failure = WriteFailed(str(exc.filename or output / relative),
                                      exc.strerror or str(exc))  # fmt: skip
                for _, _, _, later in writes:
                    later.cancel()
            continue
        except CancelledError:
            continue
        if changed:
            written.append(target)
        if feed_cache is not None:
            feed_cache.rendered(relative, inputs, sha256, size)
    if failure is not None:
        raise failure


def _advance_histories(
    config: Config, plans: Sequence[FeedPlan], names: dict[str, str], store: StateStore
) -> list[FeedChange]:
    """Each feed's new items into its history (and archive); see aggregator.archive."""
    feeds = config.feeds
    with store.transaction():  # the history and the deliveries it calls for, together
        changes = Histories(store).advance(
            plans, names, archive=feeds.archive, page_size=feeds.archive_page_size
        )
        webhooks.queue(store, config, changes, names)
    return changes


def _write_archives(
    config: Config,
    changes: Sequence[FeedChange],
    output: Path,
    feed_cache: FeedCache | None,
    program: bytes,
    refused: list[Problem],
    store: StateStore | None,
) -> tuple[list[Path], int, int]:
    """Every archive document that is not on disk as its inputs would render it; in
    practice the newest page of a feed that gained items (and the one before it, which
    gains its `next-archive` link). Returns the paths written, files rendered, files."""
    from aggregator.render.paths import archive_files

    written: list[Path] = []
    rendered = total = 0
    if store is None or not config.feeds.archive:
        return written, rendered, total
    histories = Histories(store)
    for change in changes:
        plan, pages = change.plan, change.history.pages
        for number, guids in enumerate(pages, start=1):
            files = archive_files(plan.directory, number)
            total += len(files)
            last = number == len(pages)
            shape = (config.site, plan.topic, plan.directory, number, last, guids)
            inputs = hashlib.sha256(program + repr(shape).encode()).digest()
            if feed_cache is not None and all(feed_cache.is_current(f, inputs) for f in files):
                continue
            # Imported here: a build whose archives are all on disk renders no feed.
            from aggregator.render.feeds import render_archive_page

            page = FeedPlan(plan.topic, histories.page(change.history, number), len(guids))
            rendered += len(files)
            for relative, data in zip(
                files, render_archive_page(config.site, page, number, last=last), strict=True
            ):
                try:
                    target, changed, sha256 = write_file(output, relative, data)
                except UnsafePath as exc:
                    refused.append(Problem(str(output / relative), None, None, exc.reason,
                                           "file not written"))  # fmt: skip
                    continue
                except OSError as exc:
                    raise WriteFailed(str(exc.filename or output / relative),
                                      exc.strerror or str(exc)) from None  # fmt: skip
                if changed:
                    written.append(target)
                if feed_cache is not None:
                    feed_cache.rendered(relative, inputs, sha256, len(data))
    return written, rendered, total
