"""The record model, and turning one raw mapping into a valid, normalised Record."""

from __future__ import annotations

import html
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from aggregator.errors import Problem, RecordError
from aggregator.parse import (
    NotARecord,
    RawRecord,
    decode,
    field_line,
    kind_for_suffix,
    parse_document,
)
from aggregator.urls import canonical_url, normalise_url

# XML 1.0 forbids C0 controls (but tab, LF, CR), surrogates and U+FFFE/U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The seed system writes -1 for "not computed yet".
UNKNOWN_SCORE = -1


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Related:
    title: str
    url: str
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One news item, validated and normalised."""

    title: str
    url: str  # the article link as given (normalised)
    guid: str  # canonical article URL: the identity used for duplicates, guid and Atom id
    published: datetime  # timezone-aware, UTC
    updated: datetime
    quality: float  # 0-100
    heat: float  # 0-100
    topics: tuple[str, ...]  # cleaned names; spelling is unified later across all records
    excerpt: str = ""
    type: str | None = None
    provider: Provider | None = None
    images: tuple[Image, ...] = ()
    related: tuple[Related, ...] = ()
    origin: str = ""  # file path or URL the record came from
    line: int | None = None

    @property
    def provider_key(self) -> str:
        """Who published it, for the per-provider cap: domain, else name, else link host."""
        if self.provider and self.provider.domain:
            return self.provider.domain.lower()
        if self.provider:
            return self.provider.name.casefold()
        return self.guid.split("/")[2]


@dataclass(frozen=True, slots=True)
class RecordDefaults:
    quality: float
    heat: float
    tracking_params: tuple[str, ...]


class Unpublished(Exception):
    """The record says `published: false`; it is left out, not rejected."""


def clean_text(value: object, field: str) -> str:
    """Plain text: entities decoded, XML-illegal characters removed, NFC, spaces folded."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(field, f"expected text, got {type(value).__name__}")
    text = html.unescape(str(value))
    if not (text.isascii() and text.isprintable()):  # else nothing to remove or normalise
        text = unicodedata.normalize("NFC", _XML_FORBIDDEN.sub("", text))
    return " ".join(text.split())  # the same whitespace as \s, folded and stripped


def parse_datetime(value: object, field: str) -> datetime:
    """ISO 8601 date or date-time; no zone means UTC. Returned in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RecordError(field, f"{value!r} is not an ISO 8601 date-time") from None
    else:
        raise RecordError(field, f"expected an ISO 8601 date-time, got {type(value).__name__}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise RecordError(field, f"{value!r} is out of range") from None


def parse_score(value: object, field: str, default: float) -> float:
    """A number clamped to 0-100; missing or -1 (unknown) takes the default."""
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise RecordError(field, f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RecordError(field, f"expected a number, got {value!r}")
    if value == UNKNOWN_SCORE:
        return default
    return float(min(100.0, max(0.0, value)))


def parse_published(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    raise RecordError("published", f"expected true or false, got {value!r}")


def parse_link(data: dict[str, Any]) -> str:
    """`webUrl`, else `originalUrl`: the first that is a usable http(s) link."""
    problems = []
    for field in ("webUrl", "originalUrl"):
        value = data.get(field)
        if value is None or value == "":
            continue
        try:
            return normalise_url(value)
        except ValueError as exc:
            problems.append((field, str(exc)))
    if problems:
        raise RecordError(*problems[0])
    raise RecordError("webUrl", "missing (and no originalUrl)")


def parse_topics(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise RecordError("topics", f"expected a list of names, got {type(value).__name__}")
    topics: list[str] = []
    for item in value:
        if item is None:
            continue
        name = clean_text(item, "topics")
        if name and name.casefold() not in {t.casefold() for t in topics}:
            topics.append(name)
    return tuple(topics)


def parse_provider(value: object) -> Provider | None:
    if isinstance(value, str):
        name = clean_text(value, "provider")
        return Provider(name) if name else None
    if not isinstance(value, dict):
        return None
    name = clean_text(value.get("name") or "", "provider.name")
    domain = value.get("domain")
    domain = clean_text(domain, "provider.domain").lower() if domain else None
    if not name and not domain:
        return None
    return Provider(name or domain or "", domain or None)


def _dimension(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def parse_images(value: object) -> tuple[Image, ...]:
    """Images with a usable absolute link; others are dropped (they are decoration)."""
    if not isinstance(value, list):
        return ()
    images = []
    for item in value:
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict):
            continue
        try:
            url = normalise_url(item.get("url"))
        except ValueError:
            continue
        images.append(Image(url, _dimension(item.get("width")), _dimension(item.get("height"))))
    return tuple(images)


def parse_related(value: object) -> tuple[Related, ...]:
    if not isinstance(value, list):
        return ()
    related = []
    for item in value:
        if not isinstance(item, dict):
            continue
        try:
            url = parse_link(item)
            title = clean_text(item.get("title") or "", "related.title")
        except RecordError:
            continue
        provider = parse_provider(item.get("provider"))
        related.append(Related(title or url, url, provider.name if provider else None))
    return tuple(related)


def record_from_mapping(
    data: object, defaults: RecordDefaults, origin: str = "", line: int | None = None
) -> Record:
    """Validate and normalise one record; raise Unpublished or RecordError."""
    if not isinstance(data, dict):
        raise RecordError(None, f"expected a record (a mapping), got {type(data).__name__}")
    if not parse_published(data.get("published")):
        raise Unpublished
    title = clean_text(data.get("title") or "", "title")
    if not title:
        raise RecordError("title", "missing or empty")
    url = parse_link(data)
    if data.get("publishedDateTime") in (None, ""):
        raise RecordError("publishedDateTime", "missing")
    published = parse_datetime(data["publishedDateTime"], "publishedDateTime")
    updated = published
    if data.get("updatedDateTime"):
        try:
            updated = max(published, parse_datetime(data["updatedDateTime"], "updatedDateTime"))
        except RecordError:
            updated = published  # a bad update time is not worth losing the record
    kind = data.get("type")
    return Record(
        title=title,
        url=url,
        guid=canonical_url(url, defaults.tracking_params),
        published=published,
        updated=updated,
        quality=parse_score(data.get("quality"), "quality", defaults.quality),
        heat=parse_score(data.get("heat"), "heat", defaults.heat),
        topics=parse_topics(data.get("topics")),
        excerpt=clean_text(data.get("excerpt") or "", "excerpt"),
        type=clean_text(kind, "type") or None if kind is not None else None,
        provider=parse_provider(data.get("provider")),
        images=parse_images(data.get("images")),
        related=parse_related(data.get("related")),
        origin=origin,
        line=line,
    )


@dataclass(frozen=True, slots=True)
class DocumentResult:
    """What one document (a file or a response body) yielded."""

    records: tuple[Record, ...] = ()
    problems: tuple[Problem, ...] = ()
    unpublished: int = 0


def records_from_text(
    text: str, kind: str, origin: str, defaults: RecordDefaults
) -> DocumentResult:
    """Parse a whole document; each bad record becomes a Problem, the rest are kept."""
    try:
        raw = parse_document(text, kind)
    except NotARecord as exc:
        return DocumentResult(
            problems=(Problem(origin, 1, None, str(exc), "file ignored", "warning"),)
        )
    except RecordError as exc:
        return DocumentResult(problems=(_problem(origin, exc, exc.line, "file skipped"),))
    records: list[Record] = []
    problems: list[Problem] = []
    unpublished = 0
    for item in raw:
        try:
            records.append(record_from_mapping(item.data, defaults, origin, item.line))
        except Unpublished:
            unpublished += 1
        except RecordError as exc:
            line = exc.line or _locate(text, kind, exc.field, item)
            problems.append(_problem(origin, exc, line, "record skipped", item.index))
    return DocumentResult(tuple(records), tuple(problems), unpublished)


def load_record_file(path: str, defaults: RecordDefaults) -> DocumentResult:
    """Read and parse one record file. Never raises for bad content."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        text = decode(data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return DocumentResult(problems=(Problem(path, None, None, reason, "file skipped"),))
    except RecordError as exc:
        return DocumentResult(problems=(_problem(path, exc, exc.line, "file skipped"),))
    return records_from_text(text, kind_for_suffix(os.path.splitext(path)[1]), path, defaults)


def _problem(
    origin: str, exc: RecordError, line: int | None, action: str, index: int | None = None
) -> Problem:
    field = exc.field
    if index is not None:
        field = f"[{index}].{field}" if field else f"[{index}]"
    return Problem(origin, line, field, exc.reason, action)


def _locate(text: str, kind: str, field: str | None, item: RawRecord) -> int | None:
    """Best-effort line of a bad field: only for one-record documents, where it is unambiguous."""
    if field is None or item.index is not None or kind == "json":
        return item.line
    return field_line(text, field.split(".")[0]) or item.line
