"""Every output file, one feed at a time: a feed's RSS, Atom and JSON Feed files and its
page are one job, small enough to send to a worker process; the OPML list and the
stylesheet are made once for the whole site."""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.config import SiteConfig
from aggregator.render.feeds import feed_stylesheet, render_feeds
from aggregator.render.html import render_page
from aggregator.render.jsonfeed import render_json_feed
from aggregator.render.opml import render_opml
from aggregator.render.paths import (
    OPML_NAME,
    STYLESHEET_NAME,
    FeedSummary,
    RenderJob,
    feed_files,
    page_path,
)


def render_job(
    site: SiteConfig, names: dict[str, str], feeds: Sequence[FeedSummary], job: RenderJob
) -> dict[str, bytes]:
    """The files of one job, keyed by their paths relative to the output folder.
    `names`: how each topic key is shown; `feeds`: every feed, for the page's links."""
    files = {}
    if job.feeds:
        rss, atom, json_feed = feed_files(job.plan)
        files[rss], files[atom] = render_feeds(site, job.plan, names, job.archive_pages)
        files[json_feed] = render_json_feed(site, job.plan, names)
    if job.page:
        files[page_path(job.plan)] = render_page(site, job.plan, feeds)
    return files


def render_site_list(site: SiteConfig, feeds: Sequence[FeedSummary]) -> dict[str, bytes]:
    """The OPML list of every feed and the stylesheet the feeds refer to."""
    return {OPML_NAME: render_opml(site, feeds), STYLESHEET_NAME: feed_stylesheet()}
