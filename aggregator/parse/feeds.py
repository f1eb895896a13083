"""Turn a fetched body into raw records: mappings, one per record, not yet checked.

The kind of document is recognised from the content first (a leading `<` is XML, `{` or
`[` JSON, `---` front matter) and from the Content-Type otherwise:
- one record: Markdown with front matter, YAML, or a JSON object;
- a JSON collection: a list, or an object holding the list under `value`, `news` or
  `items`; the seed API's pages (`{"page": 1, "value": [...], "nextPage": 2}`) also
  say which page comes next;
- an RSS, Atom or RDF feed (feedparser) or a JSON Feed: each entry becomes a record's
  mapping, with the feed's title and link as its provider and the feed's date when it
  has none of its own.

Nothing here judges a record: the caller (`sources/remote.py`) has them checked.
"""

from __future__ import annotations

import time
import xml.sax
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser

from aggregator.config import LimitsConfig
from aggregator.errors import AggregatorError, RecordError
from aggregator.parse.documents import (
    COLLECTION_KEYS,
    NotARecord,
    RawRecord,
    bytes_to_text,
    load_json,
    parse_document,
    raw_records,
)

FEED = "feed"
JSON = "json"
YAML = "yaml"
MARKDOWN = "markdown"

_MEDIA_KINDS = {
    "application/json": JSON,
    "text/json": JSON,
    "application/feed+json": JSON,
    "application/rss+xml": FEED,
    "application/atom+xml": FEED,
    "application/rdf+xml": FEED,
    "application/xml": FEED,
    "text/xml": FEED,
    "application/yaml": YAML,
    "application/x-yaml": YAML,
    "text/yaml": YAML,
    "text/x-yaml": YAML,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
}
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
JSON_FEED_VERSION = "https://jsonfeed.org/version/"


class UnparseableBody(AggregatorError):
    """The body as a whole is not a document we understand."""

    def __init__(self, url: str, reason: str, line: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.line = line
        super().__init__(f"{url}: {reason}")


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """What one response body holds: its kind, one raw mapping per record (in order),
    and the page that follows."""

    kind: str
    records: tuple[RawRecord, ...]
    next_page: str | None = None  # the collection's `nextPage`, as text


def detect_kind(content_type: str, body: bytes) -> str:
    """FEED, JSON, YAML or MARKDOWN, from the content itself, else the Content-Type."""
    head = body[:512]
    for bom in _BOMS:
        if head.startswith(bom):
            if bom != _BOMS[0]:
                return FEED  # UTF-16 text here is XML; our other formats are UTF-8
            head = head[len(bom) :]
            break
    head = head.lstrip()
    if head.startswith(b"<"):
        return FEED
    if head[:1] in (b"{", b"["):
        return JSON
    if head.startswith(b"---"):
        return MARKDOWN
    media_type = content_type.split(";")[0].strip().lower()
    if media_type.endswith("+json"):
        return JSON
    return _MEDIA_KINDS.get(media_type, YAML)


def parse_body(body: bytes, content_type: str, url: str, limits: LimitsConfig) -> ParsedBody:
    """The raw records (and the next page) of one response body; UnparseableBody if it
    is not a document at all. `limits` caps nesting and aliases while parsing."""
    kind = detect_kind(content_type, body)
    if kind == FEED:
        return ParsedBody(FEED, tuple(_feed_entries(body, content_type, url)))
    try:
        text = bytes_to_text(body)
        if kind == JSON:
            value = load_json(text, limits)
            if _is_json_feed(value):
                return ParsedBody(FEED, tuple(_json_feed_entries(value, url)))
            raw, next_page = _json_records(value)
            return ParsedBody(JSON, tuple(raw), next_page)
        return ParsedBody(kind, tuple(parse_document(text, kind, limits)))
    except NotARecord:
        raise UnparseableBody(url, "Markdown without YAML front matter: not a record", 1) from None
    except RecordError as exc:
        what = f"{exc.field}: {exc.reason}" if exc.field else exc.reason
        raise UnparseableBody(url, what, exc.line) from None


def page_number(value: object) -> str | None:
    """A `nextPage` value as text; None (last page) for null, false, "" and the like."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _json_records(value: Any) -> tuple[list[RawRecord], str | None]:
    if isinstance(value, dict):
        for key in COLLECTION_KEYS:
            items = value.get(key)
            # A seed API page has a `title` of its own, so `nextPage`/`page` mark it too.
            if isinstance(items, list) and ("nextPage" in value or "page" in value):
                raw = [RawRecord(item, None, index) for index, item in enumerate(items)]
                return raw, page_number(value.get("nextPage"))
        if "nextPage" in value:
            raise RecordError(None, "a collection page without a list under value, news or items")
    return raw_records(value, line=1), None


# --- RSS, Atom, RDF -------------------------------------------------------------------------


def _feed_entries(body: bytes, content_type: str, url: str) -> list[RawRecord]:
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no feed element"
        raise UnparseableBody(url, f"not an RSS or Atom feed ({reason})")
    _check_well_formed(parsed, url)
    feed = parsed.feed
    provider = _provider(feed.get("title"), feed.get("link") or url)
    fallback_date = dict.get(feed, "updated_parsed") or dict.get(feed, "published_parsed")
    return [
        RawRecord(_entry_mapping(entry, provider, fallback_date), None, index)
        for index, entry in enumerate(parsed.entries)
    ]


def _check_well_formed(parsed: Any, url: str) -> None:
    """A feed that is not well-formed XML is a failure: feedparser's lenient parser reads
    what it can of a truncated body, and what is missing would silently leave the feeds.
    HTML entities undeclared in XML (`&nbsp;`) are everyday sloppiness and are tolerated
    while entries were found; so is a Content-Type or encoding declaration that is off."""
    error = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if error is None or isinstance(error, feedparser.ThingsNobodyCaresAboutButMe):
        return
    if isinstance(error, xml.sax.SAXParseException):
        message = error.getMessage()
        if message == "undefined entity" and parsed.entries:
            return
        where = f"line {error.getLineNumber()}, column {error.getColumnNumber()}: "
        raise UnparseableBody(url, f"not well-formed XML ({where}{message}); a truncated "
                              "or broken feed")  # fmt: skip
    if not parsed.entries:
        raise UnparseableBody(url, f"not a usable feed ({error})")


def _entry_mapping(
    entry: Any, provider: dict[str, str], fallback_date: time.struct_time | None
) -> dict[str, Any]:
    # dict.get: FeedParserDict.get maps a missing `updated_parsed` to `published_parsed`
    # (with a DeprecationWarning); we want to know what the entry really holds.
    updated = dict.get(entry, "updated_parsed")
    published = dict.get(entry, "published_parsed") or updated or fallback_date
    entry_id = entry.get("id") or ""
    return {
        "title": entry.get("title"),
        "webUrl": entry.get("link"),
        "originalUrl": entry_id if entry_id.startswith(("http://", "https://")) else None,
        "excerpt": entry.get("summary"),
        "publishedDateTime": _iso(published),
        "updatedDateTime": _iso(updated),
        "topics": [tag.get("term") for tag in entry.get("tags") or () if tag.get("term")],
        "provider": provider,
        "images": _entry_images(entry),
    }


def _entry_images(entry: Any) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = []
    for media in entry.get("media_content") or ():
        kind = media.get("medium") or media.get("type") or "image"
        if kind == "image" or kind.startswith("image/"):
            images.append(_image(media.get("url"), media.get("width"), media.get("height")))
    for thumbnail in entry.get("media_thumbnail") or ():
        images.append(_image(thumbnail.get("url"), thumbnail.get("width"), thumbnail.get("height")))
    for enclosure in entry.get("enclosures") or ():
        if (enclosure.get("type") or "").startswith("image/"):
            images.append(_image(enclosure.get("href"), None, None))
    unique: dict[object, dict[str, Any]] = {}
    for image in images:
        if image["url"]:
            unique.setdefault(image["url"], image)
    return list(unique.values())


def _image(url: object, width: object, height: object) -> dict[str, Any]:
    return {"url": url, "width": _int(width), "height": _int(height)}


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _iso(moment: time.struct_time | None) -> str | None:
    """feedparser's dates are UTC struct_times."""
    if moment is None:
        return None
    return datetime(*moment[:6], tzinfo=UTC).isoformat()


def _provider(title: object, link: str) -> dict[str, str]:
    host = (urlsplit(link).hostname or "").lower()
    domain = host.removeprefix("www.")
    name = title if isinstance(title, str) and title.strip() else domain
    return {"name": name, "domain": domain}


# --- JSON Feed (jsonfeed.org) ---------------------------------------------------------------


def _is_json_feed(value: Any) -> bool:
    version = value.get("version") if isinstance(value, dict) else None
    return isinstance(version, str) and version.startswith(JSON_FEED_VERSION)


def _json_feed_entries(feed: dict[str, Any], url: str) -> list[RawRecord]:
    provider = _provider(feed.get("title"), str(feed.get("home_page_url") or url))
    items = feed.get("items")
    if not isinstance(items, list):
        raise UnparseableBody(url, "JSON Feed without an `items` list")
    return [
        RawRecord(_json_feed_mapping(item, provider), None, index)
        if isinstance(item, dict)
        else RawRecord(item, None, index)
        for index, item in enumerate(items)
    ]


def _json_feed_mapping(item: dict[str, Any], provider: dict[str, str]) -> dict[str, Any]:
    image = item.get("image") or item.get("banner_image")
    return {
        "title": item.get("title"),
        "webUrl": item.get("url") or item.get("external_url"),
        "excerpt": item.get("summary") or item.get("content_text"),
        "publishedDateTime": item.get("date_published") or item.get("date_modified"),
        "updatedDateTime": item.get("date_modified"),
        "topics": item.get("tags"),
        "provider": provider,
        "images": [image] if isinstance(image, str) else None,
    }
