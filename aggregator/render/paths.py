"""Where each output file goes and what the planning of a build needs to know of a feed,
without the renderers: deciding that nothing needs rendering imports no feedgen, lxml
or jinja2 (output/plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.rank import FeedPlan, Topic

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the date of a feed that has no items yet
STYLESHEET_NAME = "feed.xsl"  # beside the all-topics feed, at the top of the output folder
ARCHIVE_FOLDER = "archive"  # a feed's archive documents, beside its files
PAGE_NAME = "index.html"
JSON_FEED_NAME = "feed.json"
OPML_NAME = "index.opml"


@dataclass(frozen=True, slots=True)
class FeedSummary:
    """What pages and the OPML list show of a feed besides its items: small enough to
    send with each page to a worker process."""

    topic: Topic | None
    directory: str
    total: int
    newest: datetime
    shown: int = 0  # the items the feed holds (at most [feeds] max_items of `total`)

    @classmethod
    def of(cls, plan: FeedPlan) -> FeedSummary:
        newest = newest_date(plan) if plan.known is None else (
            datetime.fromisoformat(plan.known.newest))  # its items need not be made
        return cls(plan.topic, plan.directory, plan.total, newest, len(plan.items))


def newest_date(plan: FeedPlan) -> datetime:
    return max((item.updated for item in plan.items), default=EPOCH)


def archive_files(directory: str, number: int) -> tuple[str, str]:
    """Archive document `number` of a feed (RSS, Atom), relative to the output folder.
    Not named rss.xml/atom.xml, so WebSub and webhooks never take one for a feed."""
    prefix = f"{directory}/" if directory else ""
    return (f"{prefix}{ARCHIVE_FOLDER}/rss-{number}.xml",
            f"{prefix}{ARCHIVE_FOLDER}/atom-{number}.xml")  # fmt: skip


def page_path(plan: FeedPlan | FeedSummary) -> str:
    """A feed's page, relative to the output folder."""
    return f"{plan.directory}/{PAGE_NAME}" if plan.directory else PAGE_NAME


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


