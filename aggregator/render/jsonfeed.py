"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1) for one planned feed.

Same items, order, ids (the guid) and dates as the RSS and Atom files beside it.
Keys are sorted and nothing reads the clock, so the same records give the same bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aggregator import markup
from aggregator.config import SiteConfig
from aggregator.model import Record
from aggregator.rank import FeedPlan
from aggregator.render.feeds import (
    PROJECT_URL,
    FeedLinks,
    _content_html,
    copy_label,
    feed_description,
    feed_title,
)
from aggregator.topics import topic_key

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def rfc3339(moment: datetime) -> str:
    """The same spelling as the Atom dates: 2026-11-24T10:05:00+00:00."""
    return moment.astimezone(UTC).isoformat()


def render_json_feed(site: SiteConfig, plan: FeedPlan, topic_names: dict[str, str]) -> bytes:
    links = FeedLinks.for_plan(site, plan)
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": feed_title(site, plan.topic),
        "home_page_url": links.page,
        "feed_url": links.json,
        "description": feed_description(site, plan.topic),
        "language": site.language,
        "authors": [{"name": site.author, "url": site.base_url}],
        "items": [_item(record, topic_names) for record in plan.items],
    }
    if site.websub_hub:
        feed["hubs"] = [{"type": "WebSub", "url": site.websub_hub}]
    text = json.dumps(feed, ensure_ascii=False, indent=2, sort_keys=True)
    return (text + "\n").encode("utf-8")


def _item(record: Record, topic_names: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": record.guid,
        "url": record.url,
        "title": record.title,
        "content_html": _content_html(record),
        "date_published": rfc3339(record.published),
        "date_modified": rfc3339(record.updated),
    }
    summary = markup.plain_text(record.excerpt) if record.excerpt else ""
    if summary:
        # Plain text in JSON Feed, and some readers render it as HTML: like titles, markup
        # that decoding the excerpt's entities reveals (`&lt;script&gt;`) goes too.
        item["summary"] = summary
    if record.images:
        item["image"] = record.images[0].url
    if record.provider:
        author = {"name": record.provider.name}
        if record.provider.domain:
            author["url"] = f"https://{record.provider.domain}/"
        item["authors"] = [author]
    if record.copies:
        # A JSON Feed extension (underscore key, with `about`): the story's other copies.
        item["_aggregator"] = {
            "about": PROJECT_URL,
            "also_covered_by": [
                {"provider": copy_label(record, copy), "title": copy.title, "url": copy.url}
                for copy in record.copies
            ],
        }
    if record.topics:
        item["tags"] = [topic_names.get(topic_key(name), name) for name in record.topics]
    return item
