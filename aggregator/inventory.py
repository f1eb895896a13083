"""`aggregator topics`: every feed of the site, with its counts and addresses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from aggregator.config import SiteConfig
from aggregator.rank import FeedPlan
from aggregator.render.feeds import FeedLinks
from aggregator.render.paths import JSON_FEED_NAME


@dataclass(frozen=True, slots=True)
class FeedRow:
    name: str | None  # None for the all-topics feed
    slug: str | None
    stories: int  # stories about the topic, before the caps
    items: int  # the items its feeds hold (what a subscriber gets)
    rss: str
    atom: str
    json_feed: str
    page: str


def feed_rows(site: SiteConfig, plans: Sequence[FeedPlan]) -> list[FeedRow]:
    """The all-topics feed first, then the topics by name, as the front page lists them."""
    rows = []
    for plan in plans:
        links = FeedLinks.for_plan(site, plan)
        rows.append(
            FeedRow(
                name=None if plan.topic is None else plan.topic.name,
                slug=None if plan.topic is None else plan.topic.slug,
                stories=plan.total,
                items=len(plan.items),
                rss=links.rss,
                atom=links.atom,
                json_feed=links.page + JSON_FEED_NAME,
                page=links.page,
            )
        )
    main = [row for row in rows if row.name is None]
    topics = sorted(
        (row for row in rows if row.name is not None),
        key=lambda row: ((row.name or "").casefold(), row.slug or ""),
    )
    return [*main, *topics]


def as_json(rows: Sequence[FeedRow]) -> str:
    """`{"all": {...}, "topics": [{...}, ...]}`, keys sorted, for scripts."""
    main = next((asdict(row) for row in rows if row.name is None), None)
    if main is not None:
        del main["name"], main["slug"]
    topics = [asdict(row) for row in rows if row.name is not None]
    return json.dumps({"all": main, "topics": topics}, indent=2, sort_keys=True, ensure_ascii=False)


def as_table(rows: Sequence[FeedRow]) -> list[str]:
    """A column per value; the RSS address stands for the feed (Atom and JSON Feed sit
    beside it as atom.xml and feed.json)."""
    header = ("TOPIC", "SLUG", "STORIES", "ITEMS", "RSS FEED")
    body = [
        (row.name or "(all topics)", row.slug or "-", str(row.stories), str(row.items), row.rss)
        for row in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(4)]
    lines = []
    for line in (header, *body):
        name, slug, stories, items, rss = line
        lines.append(
            f"{name:<{widths[0]}}  {slug:<{widths[1]}}  {stories:>{widths[2]}}  "
            f"{items:>{widths[3]}}  {rss}"
        )
    return lines
