"""What a build must render and write: for each file, the digest of the inputs it is
made from, and whether the feed cache says it is already on disk as those inputs would
render it. Decided before anything is rendered; nothing here writes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aggregator.config import Config
from aggregator.rank import FeedPlan, KnownFeed
from aggregator.render.paths import ARCHIVE_FOLDER, OPML_NAME, PAGE_NAME, STYLESHEET_NAME
from aggregator.state.feed_cache import FeedCache, feed_inputs
from aggregator.topics import topic_key

if TYPE_CHECKING:
    from aggregator.render.paths import FeedSummary, RenderJob



@dataclass(frozen=True, slots=True)
class Rendering:
    """What a build must render: the jobs, and the inputs digest each file is made from."""

    jobs: list[RenderJob]
    inputs: list[bytes]  # of each job's feed files
    page_inputs: list[bytes]  # of each job's page
    site_inputs: bytes  # of the OPML list and the stylesheet
    site_list: bool  # whether the OPML list and stylesheet are rendered
    feeds: list[FeedSummary]
    known: dict[str, KnownFeed]  # what every feed is rendered from, by its directory
    rendered: int  # files to render
    total: int  # files the site has


def plan_rendering(
    config: Config,
    plans: Sequence[FeedPlan],
    names: dict[str, str],
    feed_cache: FeedCache | None,
    program: bytes,
    archives: dict[str, int],
) -> Rendering:
    from aggregator.render.paths import FeedSummary, RenderJob, feed_files, page_path

    def current(relatives: Sequence[str], inputs: bytes) -> bool:
        return feed_cache is not None and all(feed_cache.is_current(r, inputs) for r in relatives)

    def taken(plan: FeedPlan) -> KnownFeed | None:
        """What a feed as the last build left it was rendered from (None: work it out)."""
        known = plan.known
        if known is None or known.archive_pages != archives.get(plan.directory, 0):
            return None
        return known

    seen: dict[int, bytes] = {}  # the plans hold every item while this runs
    kept = [taken(plan) for plan in plans]
    digests = [
        feed_inputs(program, config.site, plan, names, archives.get(plan.directory, 0), seen)
        if known is None else known.inputs
        for plan, known in zip(plans, kept, strict=True)
    ]
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
    summaries = [FeedSummary.of(plan) for plan in plans]
    remembered: dict[str, KnownFeed] = {}
    for plan, known, digest, summary in zip(plans, kept, digests, summaries, strict=True):
        page = page_inputs(plan, digest) if known is None or plan.topic is None else (
            known.page_inputs)  # fmt: skip
        archive_pages = archives.get(plan.directory, 0)
        remembered[plan.directory] = KnownFeed(digest, page, summary.newest.isoformat(),
                                               archive_pages)  # fmt: skip
        feeds = not current(feed_files(plan), digest)
        page_stale = not current([page_path(plan)], page)
        if feeds or page_stale:
            jobs.append(RenderJob(plan.made(), feeds=feeds, page=page_stale,
                                  archive_pages=archive_pages))  # fmt: skip
            inputs.append(digest)
            pages.append(page)
    shared = [OPML_NAME, STYLESHEET_NAME]
    site_list = not current(shared, site_inputs)
    return Rendering(
        jobs=jobs,
        inputs=inputs,
        page_inputs=pages,
        site_inputs=site_inputs,
        site_list=site_list,
        feeds=summaries,
        known=remembered,
        rendered=sum(3 * job.feeds + job.page for job in jobs) + len(shared) * site_list,
        total=4 * len(plans) + len(shared),
    )


def link_order(relative: str) -> int:
    """Where a file comes in the order files are published in, so that nothing links to a
    file not yet there: the stylesheet (feeds point at it), archive documents (feeds link
    to them), the feeds, the topic pages, the front page, the OPML list. `publish` writes
    in this order; object storage uploads in it, and deletes in reverse."""
    folders, _, name = relative.rpartition("/")
    if relative == STYLESHEET_NAME:
        return 0
    if folders.rpartition("/")[2] == ARCHIVE_FOLDER:
        return 1
    if relative == OPML_NAME:
        return 5
    if relative == PAGE_NAME:
        return 4
    if name == PAGE_NAME:
        return 3
    return 2  # the feeds, and any other file
