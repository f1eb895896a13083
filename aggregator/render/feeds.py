"""RSS 2.0 and Atom 1.0 documents for one planned feed, written with feedgen.

Nothing here reads the clock: every date comes from the records, so the same
records always give the same bytes.
"""

from __future__ import annotations

import html
import mimetypes
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urljoin

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from aggregator import markup
from aggregator.config import SiteConfig
from aggregator.model import Record, Related
from aggregator.rank import FeedPlan, Topic
from aggregator.render.paths import (
    STYLESHEET_NAME,
    FeedSummary,
    archive_files,
    newest_date,
)
from aggregator.topics import topic_key

PROJECT_URL = "https://github.com/aggregator-feeds/aggregator"
MEDIA_NS = "http://search.yahoo.com/mrss/"
ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005


class _ItemExtension(BaseExtension):
    """Declares the Media RSS namespace on the feed."""

    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS}


class _ItemEntryExtension(BaseEntryExtension):
    """The lead image as a bare `media:content`, a `media:thumbnail` and an enclosure
    (RSS `enclosure`, Atom `link rel="enclosure"`), and Atom `link rel="related"`.

    feedgen's own media extension wraps every image in a `media:group` (invalid with
    one child), and its Atom writer drops the `rel` of entry links (so an enclosure
    made with feedgen would become a second `alternate` link).
    """

    def __init__(self) -> None:
        self.image: dict[str, str] | None = None
        self.related: list[tuple[str, str]] = []

    def _add_image(self, item: object) -> None:
        if self.image:
            xml_elem(f"{{{MEDIA_NS}}}content", item, **self.image)
            # jekyll-feed's choice: many readers take the thumbnail as the item's picture.
            thumbnail = {key: self.image[key] for key in ("url", "width", "height")
                         if key in self.image}  # fmt: skip
            xml_elem(f"{{{MEDIA_NS}}}thumbnail", item, **thumbnail)

    def extend_rss(self, item: object) -> object:
        # newsboat and sfeed read enclosures, not Media RSS. An enclosure must name its
        # type: an image whose URL does not tell it gets none (it is still in media:*).
        # Its length is unknown without fetching it: 0, as the RSS Advisory Board says.
        if self.image and "type" in self.image:
            xml_elem("enclosure", item, url=self.image["url"], length="0",
                     type=self.image["type"])  # fmt: skip
        self._add_image(item)
        return item

    def extend_atom(self, entry: object) -> object:
        for href, title in self.related:
            xml_elem("link", entry, href=href, rel="related", title=title)
        if self.image and "type" in self.image:
            xml_elem("link", entry, href=self.image["url"], rel="enclosure",
                     type=self.image["type"])  # fmt: skip
        self._add_image(entry)
        return entry


class _FeedLinksExtension(BaseExtension):
    """Feed-level links feedgen cannot write: the WebSub hub and the RFC 5005 archive
    links (`atom:link` in RSS, `link` in Atom), and the `fh:archive` mark of an archive
    document. feedgen writes only the self link into RSS, so these need an extension.
    """

    def __init__(self) -> None:
        self.rss: list[tuple[str, str]] = []  # (rel, href)
        self.atom: list[tuple[str, str]] = []
        self.archive = False
        self.complete = False

    def _marks(self, parent: object) -> None:
        if self.archive:
            xml_elem(f"{{{HISTORY_NS}}}archive", parent)
        if self.complete:
            xml_elem(f"{{{HISTORY_NS}}}complete", parent)

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS} if self.archive else {}

    def extend_rss(self, rss: object) -> object:
        channel = rss[0]  # type: ignore[index]
        for rel, href in self.rss:
            xml_elem(f"{{{ATOM_NS}}}link", channel, href=href, rel=rel)
        self._marks(channel)
        return rss

    def extend_atom(self, feed: object) -> object:
        for rel, href in self.atom:
            xml_elem("link", feed, href=href, rel=rel)
        self._marks(feed)
        return feed


@dataclass(frozen=True, slots=True)
class FeedLinks:
    """Absolute URLs of one feed's files and of the page they belong to."""

    rss: str
    atom: str
    page: str

    @classmethod
    def for_plan(cls, site: SiteConfig, plan: FeedPlan | FeedSummary) -> FeedLinks:
        folder = urljoin(site.base_url, plan.directory + "/" if plan.directory else "")
        return cls(rss=folder + "rss.xml", atom=folder + "atom.xml", page=folder)

    @property
    def json(self) -> str:
        return self.page + "feed.json"

    def archive(self, number: int) -> tuple[str, str]:
        """The URLs of archive document `number` (1 is the oldest): RSS, Atom."""
        rss, atom = archive_files("", number)
        return self.page + rss, self.page + atom


def feed_title(site: SiteConfig, topic: Topic | None) -> str:
    if topic is None:
        return site.title
    return topic.title or f"{site.title}: {topic.name}"


def feed_description(site: SiteConfig, topic: Topic | None) -> str:
    if topic is None:
        return site.description
    return topic.description or (
        f"The top stories about {topic.name}, ranked by quality, heat and freshness."
    )


def render_feeds(
    site: SiteConfig, plan: FeedPlan, topic_names: dict[str, str], archive_pages: int = 0
) -> tuple[bytes, bytes]:
    """Return (rss, atom) bytes for `plan`; `archive_pages`: how many archive documents
    the feed has (the newest is linked as `prev-archive`)."""
    links = FeedLinks.for_plan(site, plan)
    generator = _feed(site, plan, links)
    generator.register_extension("links", _FeedLinksExtension, None)
    if site.websub_hub:
        generator.links.rss.append(("hub", site.websub_hub))
        generator.links.atom.append(("hub", site.websub_hub))
    if archive_pages:
        rss_archive, atom_archive = links.archive(archive_pages)
        generator.links.rss.append(("prev-archive", rss_archive))
        generator.links.atom.append(("prev-archive", atom_archive))
    for record in plan.items:
        _add_entry(generator, record, topic_names)
    generator.link(href=links.rss, rel="self", type="application/rss+xml")
    generator.link(href=links.page, rel="alternate", type="text/html")
    rss = generator.rss_str(pretty=True)
    generator.link(href=links.atom, rel="self", type="application/atom+xml", replace=True)
    generator.link(href=links.page, rel="alternate", type="text/html")
    atom = generator.atom_str(pretty=True)
    href = stylesheet_href(plan)
    return with_stylesheet(rss, href), with_stylesheet(atom, href)


def render_archive_page(
    site: SiteConfig, plan: FeedPlan, number: int, *, last: bool
) -> tuple[bytes, bytes]:
    """Archive document `number` (RSS, Atom) of the feed at `plan.directory`, holding
    `plan.items` (as first archived: their topic names are the ones shown then). Linked
    as RFC 5005 section 4 says: `current` to the feed, `prev-archive` to the older
    document, `next-archive` to the newer one unless this is the newest (`last`). No
    stylesheet: the page it shows is for subscribing, and this is not to subscribe to."""
    links = FeedLinks.for_plan(site, plan)
    generator = _feed(site, plan, links)
    generator.title(f"{feed_title(site, plan.topic)} (archive, part {number})")
    generator.register_extension("links", _FeedLinksExtension, None)
    generator.links.archive = True
    if number == 1 and last:
        # The only archive document holds every item the feed ever had: a complete
        # feed (RFC 5005 section 2), which links to no other document.
        generator.links.complete = True
    else:
        generator.links.rss.append(("current", links.rss))
        generator.links.atom.append(("current", links.atom))
    neighbours = [("prev-archive", number - 1)] if number > 1 else []
    if not last:
        neighbours.append(("next-archive", number + 1))
    for rel, other in neighbours:
        rss_url, atom_url = links.archive(other)
        generator.links.rss.append((rel, rss_url))
        generator.links.atom.append((rel, atom_url))
    for record in plan.items:
        _add_entry(generator, record, {})
    rss_self, atom_self = links.archive(number)
    generator.link(href=rss_self, rel="self", type="application/rss+xml")
    generator.link(href=links.page, rel="alternate", type="text/html")
    rss = generator.rss_str(pretty=True)
    generator.link(href=atom_self, rel="self", type="application/atom+xml", replace=True)
    generator.link(href=links.page, rel="alternate", type="text/html")
    return rss, generator.atom_str(pretty=True)


def stylesheet_href(plan: FeedPlan) -> str:
    """The stylesheet relative to the feed, so it resolves on any host and in a preview."""
    depth = plan.directory.count("/") + 1 if plan.directory else 0
    return "../" * depth + STYLESHEET_NAME


def with_stylesheet(document: bytes, href: str) -> bytes:
    """Insert an `xml-stylesheet` processing instruction after the XML declaration.

    Browsers that still run XSLT show the feed as a page explaining how to subscribe;
    feed readers ignore the instruction.
    """
    quoted = html.escape(href, quote=True)
    instruction = f'<?xml-stylesheet type="text/xsl" href="{quoted}"?>\n'.encode()
    if not document.startswith(b"<?xml "):
        return instruction + document
    declaration, _, rest = document.partition(b"?>")
    return declaration + b"?>\n" + instruction + rest.removeprefix(b"\n")


def feed_stylesheet() -> bytes:
    """The XSL stylesheet the feeds refer to (package data), copied to the output folder."""
    return resources.files("aggregator").joinpath("static", STYLESHEET_NAME).read_bytes()


def _feed(site: SiteConfig, plan: FeedPlan, links: FeedLinks) -> FeedGenerator:
    generator = FeedGenerator()
    generator.register_extension("item", _ItemExtension, _ItemEntryExtension)
    generator.load_extension("dc", atom=False, rss=True)
    title = feed_title(site, plan.topic)
    generator.id(links.atom)
    generator.title(title)
    generator.description(feed_description(site, plan.topic))
    generator.language(site.language)
    generator.author(name=site.author, uri=site.base_url)
    generator.generator("aggregator", uri=PROJECT_URL)
    generator.updated(newest_date(plan))  # also lastBuildDate: the newest item, not the clock
    return generator


def _add_entry(generator: FeedGenerator, record: Record, topic_names: dict[str, str]) -> None:
    entry = generator.add_entry(order="append")  # keep rank order
    entry.id(record.guid)
    # The guid is the canonical link, which the source may never have published (no
    # trailing slash, no tracking parameters): a permalink only when it is the link.
    entry.guid(record.guid, permalink=record.guid == record.url)
    entry.title(record.title)
    entry.link(href=record.url, rel="alternate")
    entry.item.related = [(related.url, related.title) for related in record.related]
    entry.item.related.extend((copy.url, copy.title) for copy in record.copies)
    entry.published(record.published)
    entry.updated(record.updated)
    if record.excerpt:
        # The excerpt is a sanitised HTML fragment (records.check_excerpt). RSS
        # descriptions are HTML, escaped into the XML by feedgen; Atom's summary says
        # "html" when the fragment holds markup or entities, else it is plain text.
        entry.description(record.excerpt)
        if markup.holds_markup(record.excerpt):
            entry.summary(record.excerpt, type="html")
        else:
            entry.summary(record.excerpt)
    entry.content(_content_html(record), type="html")
    if record.provider:
        uri = f"https://{record.provider.domain}/" if record.provider.domain else None
        entry.author(name=record.provider.name, uri=uri)
        entry.dc.dc_creator(record.provider.name)
    if record.topics:
        # One call: feedgen rebuilds its whole category list on every call (O(n²) per entry).
        entry.category([{"term": topic_names.get(topic_key(name), name)} for name in record.topics])
    if record.images:
        entry.item.image = _media(record)


def copy_label(record: Record, copy: Related) -> str:
    """How an item names one of its copies: the outlet, or "another edition" for a copy
    from the item's own provider (a regional edition, a re-post)."""
    name = copy.provider or copy.url.split("/")[2]
    own = record.provider.name if record.provider else record.guid.split("/")[2]
    return f"{name} (another edition)" if name.casefold() == own.casefold() else name


def _media(record: Record) -> dict[str, str]:
    image = record.images[0]
    media = {"url": image.url, "medium": "image"}
    kind = mimetypes.guess_type(image.url.split("?")[0])[0]
    if kind and kind.startswith("image/"):
        media["type"] = kind
    if image.width and image.height:
        media["width"], media["height"] = str(image.width), str(image.height)
    return media


def _content_html(record: Record) -> str:
    """The excerpt, lead image and related coverage as HTML, for readers that show content."""
    parts = []
    if record.images:
        src, alt = html.escape(record.images[0].url), html.escape(record.title)
        parts.append(f'<p><img src="{src}" alt="{alt}"/></p>')
    if record.excerpt:
        # Already safe HTML. A <p> cannot hold block elements, so those get a <div>.
        wrapper = "div" if markup.holds_blocks(record.excerpt) else "p"
        parts.append(f"<{wrapper}>{record.excerpt}</{wrapper}>")
    source = record.provider.name if record.provider else record.guid.split("/")[2]
    parts.append(f'<p><a href="{html.escape(record.url)}">Read at {html.escape(source)}</a></p>')
    if record.copies:
        links = ", ".join(
            f'<a href="{html.escape(copy.url)}">{html.escape(copy_label(record, copy))}</a>'
            for copy in record.copies
        )
        parts.append(f"<p>Also covered by {links}</p>")
    if record.related:
        items = "".join(
            f'<li><a href="{html.escape(r.url)}">{html.escape(r.title)}</a>'
            + (f" ({html.escape(r.provider)})" if r.provider else "")
            + "</li>"
            for r in record.related
        )
        parts.append(f"<p>Related coverage:</p><ul>{items}</ul>")
    return "".join(parts)
