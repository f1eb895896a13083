"""OPML 2.0 subscription list (http://opml.org/spec2.opml): every feed in one file.

A reader imports `index.opml` and subscribes to the all-topics feed and each topic
feed in one step. Each outline points at the RSS file; the Atom and JSON files carry
the same items.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC
from email.utils import format_datetime

from aggregator.config import SiteConfig
from aggregator.render.feeds import FeedLinks, feed_description, feed_title
from aggregator.render.paths import EPOCH, FeedSummary

OPML_DOCS = "http://opml.org/spec2.opml"


def render_opml(site: SiteConfig, feeds: Sequence[FeedSummary]) -> bytes:
    """The all-topics feed first, then each topic by name."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = f"{site.title}: all feeds"
    newest = max((feed.newest for feed in feeds), default=EPOCH)
    ET.SubElement(head, "dateModified").text = format_datetime(newest.astimezone(UTC), usegmt=True)
    ET.SubElement(head, "ownerName").text = site.author
    ET.SubElement(head, "docs").text = OPML_DOCS
    body = ET.SubElement(root, "body")
    for feed in sorted(feeds, key=_order):
        _outline(body, site, feed)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _order(feed: FeedSummary) -> tuple[int, str, str]:
    if feed.topic is None:
        return (0, "", "")
    return (1, feed.topic.name.casefold(), feed.topic.slug)


def _outline(body: ET.Element, site: SiteConfig, feed: FeedSummary) -> None:
    links = FeedLinks.for_plan(site, feed)
    title = feed_title(site, feed.topic)
    ET.SubElement(
        body,
        "outline",
        text=title,
        title=title,
        type="rss",
        version="RSS2",
        xmlUrl=links.rss,
        htmlUrl=links.page,
        description=feed_description(site, feed.topic),
        language=site.language,
    )
