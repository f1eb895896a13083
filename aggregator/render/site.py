"""Every output file, one feed at a time: a feed's RSS, Atom and JSON Feed files and its
page are one job, small enough to send to a worker process; the OPML list and the
stylesheet are made once for the whole site."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aggregator.config import SiteConfig
from aggregator.rank import FeedPlan
from aggregator.render.feeds import STYLESHEET_NAME, FeedSummary, feed_stylesheet, render_feeds
from aggregator.render.html import page_path, render_page
from aggregator.render.jsonfeed import JSON_FEED_NAME, render_json_feed
from aggregator.render.opml import OPML_NAME, render_opml


@dataclass(frozen=True, slots=True)
class RenderJob:
    plan: FeedPlan
    feeds: bool  # its RSS, Atom and JSON Feed files
    page: bool  # its HTML page
    archive_pages: int = 0  # archive documents the feed links to (RFC 5005)


def feed_files(plan: FeedPlan) -> tuple[str, str, str]:
    """A feed's RSS, Atom and JSON Feed files, relative to the output folder."""
    prefix = f"{plan.directory}/" if plan.directory else ""
    return f"{prefix}rss.xml", f"{prefix}atom.xml", f"{prefix}{JSON_FEED_NAME}"


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
