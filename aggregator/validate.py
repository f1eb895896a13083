"""One raw mapping to a valid, normalised Record, with every field check.

Parsers (`parse/`) turn bytes into `RawRecord` mappings and never judge them; this
module does: `record_from_mapping` checks one mapping (the `parse_*` functions check one
field each), `records_from_raw` / `records_from_source` one document's mappings, each
bad record becoming a Problem with its line where known, and `load_record_file` reads,
parses and validates one record file. `RecordDefaults` are the build's settings that
shape records; `SourceDefaults` what a `url` source adds to each record it gives.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any

from aggregator import markup
from aggregator.config import Config, LimitsConfig
from aggregator.errors import Problem, RecordError, shown
from aggregator.limits import check_size, read_capped
from aggregator.model import DocumentResult, Image, Note, Provider, Record, Related
from aggregator.parse.documents import (
    NotARecord,
    RawRecord,
    bytes_to_text,
    field_line,
    kind_for_suffix,
    parse_document,
)
from aggregator.urls import canonical_url, normalise_host, resolve_url

_READ_CHUNK = 64 * 1024
_DEFAULT_TITLE_CHARS = LimitsConfig().max_title_chars
# The seed system writes -1 for "not computed yet".
UNKNOWN_SCORE = -1


@dataclass(frozen=True, slots=True)
class RecordDefaults:
    quality: float
    heat: float
    tracking_params: tuple[str, ...]
    excerpt_html: str = "sanitize"  # [records] excerpt_html
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    @classmethod
    def from_config(cls, config: Config) -> RecordDefaults:
        records = config.records
        return cls(records.default_quality, records.default_heat, records.tracking_params,
                   records.excerpt_html, config.limits)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceDefaults:
    """What a `url` source adds to every record it gives."""

    records: RecordDefaults  # quality/heat defaults already set from the source's settings
    topics: tuple[str, ...] = ()


class Unpublished(Exception):
    """The record says `published: false`; it is left out, not rejected."""


def clean_text(value: object, field: str) -> str:
    """Plain text: tags removed, entities decoded, XML-illegal characters removed, NFC,
    spaces folded."""
    return markup.plain_text(_as_text(value, field))


def _as_text(value: object, field: str) -> str:
    """A string, or a number written as text; anything else is an error."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(field, f"expected text, got {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > 128:
        # str() of an integer past 4300 digits raises; no real title is such a number.
        raise RecordError(field, f"expected text, got {shown(value)}")
    return str(value)


def capped_text(value: object, field: str, limit: int, notes: list[Note] | None, key: str) -> str:
    """`clean_text`, truncated to `limit` characters with a note when longer."""
    text = clean_text(value, field)
    if len(text) > limit:
        _note(
            notes,
            field,
            f"{len(text):,} characters, over the limit of {limit:,} ({key})",
            f"truncated to {limit:,}",
        )
        text = markup.truncate(text, limit)
    return text


def _note(notes: list[Note] | None, field: str, reason: str, action: str) -> None:
    if notes is not None:
        notes.append(Note(field, reason, action))


def check_excerpt(
    value: object, mode: str, limit: int, base_url: str | None, notes: list[Note] | None
) -> str:
    """The excerpt as a safe HTML fragment (see `Record.excerpt`); "" when missing."""
    if value is None or value == "":
        return ""
    raw = _as_text(value, "excerpt")
    if len(raw) > limit:
        _note(
            notes,
            "excerpt",
            f"{len(raw):,} characters, over the limit of {limit:,} ([limits] max_excerpt_chars)",
            f"truncated to {limit:,}",
        )
        # Cut the input, then sanitise: that repairs a tag or entity cut in half.
        raw = markup.truncate(raw, limit)
    return markup.excerpt_html(raw, mode, lambda url: _excerpt_url(url, base_url))


def _excerpt_url(value: str, base_url: str | None) -> str | None:
    try:
        return resolve_url(value, base_url)
    except ValueError:
        return None  # the attribute is dropped; the link text stays


def check_datetime(value: object, field: str) -> datetime:
    """ISO 8601 date or date-time; no zone means UTC. Returned in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RecordError(field, f"{shown(value)} is not an ISO 8601 date-time") from None
    else:
        raise RecordError(field, f"expected an ISO 8601 date-time, got {type(value).__name__}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise RecordError(field, f"{shown(value)} is out of range") from None


def check_score(value: object, field: str, default: float) -> float:
    """A number clamped to 0-100; missing or -1 (unknown) takes the default."""
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise RecordError(field, f"expected a number, got {shown(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RecordError(field, f"expected a number, got {shown(value)}")
    if value == UNKNOWN_SCORE:
        return default
    return float(min(100.0, max(0.0, value)))


def check_published(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    raise RecordError("published", f"expected true or false, got {shown(value)}")


def check_link(
    data: dict[str, Any],
    base_url: str | None = None,
    max_chars: int = LimitsConfig().max_url_chars,
) -> str:
    """`webUrl`, else `originalUrl`: the first that is a usable http(s) link, of at most
    `max_chars` characters.

    A relative link is resolved against `base_url` (the URL of the remote document the
    record came from); without one it is rejected.
    """
    problems = []
    for name in ("webUrl", "originalUrl"):
        value = data.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str) and len(value) > max_chars:
            reason = (f"{len(value):,} characters, over the limit of {max_chars:,}"
                      " ([limits] max_url_chars)")  # fmt: skip
            problems.append((name, reason))
            continue
        try:
            return resolve_url(value, base_url)
        except ValueError as exc:
            problems.append((name, str(exc)))
    if problems:
        raise RecordError(*problems[0])
    raise RecordError("webUrl", "missing (and no originalUrl)")


def check_topics(
    value: object,
    limit: int = _DEFAULT_TITLE_CHARS,
    notes: list[Note] | None = None,
    max_topics: int = LimitsConfig().max_topics_per_record,
) -> tuple[str, ...]:
    """Cleaned, distinct topic names (case-insensitively); at most `max_topics`, the rest
    dropped with a note: every topic of a record is a feed it is rendered into."""
    if value is None:
        return ()
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise RecordError("topics", f"expected a list of names, got {type(value).__name__}")
    topics: list[str] = []
    seen: set[str] = set()
    dropped = 0
    for item in value:
        if item is None:
            continue
        if len(topics) >= max_topics:
            dropped += 1
            continue
        name = capped_text(item, "topics", limit, notes, "[limits] max_title_chars")
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            topics.append(name)
    if dropped:
        _note(notes, "topics",
              f"{len(value):,} topics, over the limit of {max_topics:,}"
              " ([limits] max_topics_per_record)",
              f"the first {max_topics:,} kept")  # fmt: skip
    return tuple(topics)


def check_provider(
    value: object, limit: int = _DEFAULT_TITLE_CHARS, notes: list[Note] | None = None
) -> Provider | None:
    key = "[limits] max_title_chars"
    if isinstance(value, str):
        name = capped_text(value, "provider", limit, notes, key)
        return Provider(name) if name else None
    if not isinstance(value, dict):
        return None
    name = capped_text(value.get("name") or "", "provider.name", limit, notes, key)
    domain = value.get("domain")
    domain = check_domain(domain, notes) if domain else None
    if not name and not domain:
        return None
    return Provider(name or domain or "", domain or None)


def check_domain(value: object, notes: list[Note] | None = None) -> str | None:
    """A provider's domain as a host name (IDN as punycode); None, with a note, if it is not."""
    text = clean_text(value, "provider.domain")
    try:
        return normalise_host(text) if text else None
    except ValueError as exc:
        _note(notes, "provider.domain", str(exc), "domain dropped")
        return None


def _dimension(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def check_images(
    value: object, base_url: str | None = None, notes: list[Note] | None = None
) -> tuple[Image, ...]:
    """Images with a usable absolute link; others are dropped with a note (they are
    decoration, not worth the record)."""
    if not isinstance(value, list):
        return ()
    images = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict):
            _note(
                notes,
                f"images[{index}]",
                f"expected a mapping with a url, got {type(item).__name__}",
                "image dropped",
            )
            continue
        try:
            url = resolve_url(item.get("url"), base_url)
        except ValueError as exc:
            _note(notes, f"images[{index}].url", str(exc), "image dropped")
            continue
        images.append(Image(url, _dimension(item.get("width")), _dimension(item.get("height"))))
    return tuple(images)


def check_related(
    value: object,
    base_url: str | None = None,
    notes: list[Note] | None = None,
    limit: int = _DEFAULT_TITLE_CHARS,
) -> tuple[Related, ...]:
    """Related coverage with a usable link; others are dropped with a note."""
    if not isinstance(value, list):
        return ()
    related = []
    for index, item in enumerate(value):
        where = f"related[{index}]"
        if not isinstance(item, dict):
            _note(
                notes,
                where,
                f"expected a mapping, got {type(item).__name__}",
                "related link dropped",
            )
            continue
        try:
            url = check_link(item, base_url)
            title = capped_text(
                item.get("title") or "", f"{where}.title", limit, notes, "[limits] max_title_chars"
            )
            provider = check_provider(item.get("provider"), limit, notes)
        except RecordError as exc:
            _note(
                notes,
                f"{where}.{exc.field}" if exc.field else where,
                exc.reason,
                "related link dropped",
            )
            continue
        related.append(Related(title or url, url, provider.name if provider else None))
    return tuple(related)


def record_from_mapping(
    data: object,
    defaults: RecordDefaults,
    origin: str = "",
    line: int | None = None,
    *,
    base_url: str | None = None,
    notes: list[Note] | None = None,
) -> Record:
    """Validate and normalise one record; raise Unpublished or RecordError.

    `base_url`: the URL of the remote document the record came from; relative links
    are resolved against it. `notes` collects what was changed in a kept record.
    """
    if not isinstance(data, dict):
        raise RecordError(None, f"expected a record (a mapping), got {type(data).__name__}")
    if not check_published(data.get("published")):
        raise Unpublished
    limits = defaults.limits
    title = capped_text(
        data.get("title") or "", "title", limits.max_title_chars, notes, "[limits] max_title_chars"
    )
    if not title:
        given = data.get("title")
        if isinstance(given, str) and given.strip():
            raise RecordError("title", "missing or empty: nothing visible once control and "
                              "format characters are removed")  # fmt: skip
        raise RecordError("title", "missing or empty")
    url = check_link(data, base_url, limits.max_url_chars)
    if data.get("publishedDateTime") in (None, ""):
        raise RecordError("publishedDateTime", "missing")
    published = check_datetime(data["publishedDateTime"], "publishedDateTime")
    updated = published
    if data.get("updatedDateTime"):
        try:
            updated = max(published, check_datetime(data["updatedDateTime"], "updatedDateTime"))
        except RecordError:
            updated = published  # a bad update time is not worth losing the record
    kind = data.get("type")
    return Record(
        title=title,
        url=url,
        guid=canonical_url(url, defaults.tracking_params),
        published=published,
        updated=updated,
        quality=check_score(data.get("quality"), "quality", defaults.quality),
        heat=check_score(data.get("heat"), "heat", defaults.heat),
        topics=check_topics(
            data.get("topics"), limits.max_title_chars, notes, limits.max_topics_per_record
        ),
        excerpt=check_excerpt(
            data.get("excerpt"), defaults.excerpt_html, limits.max_excerpt_chars, base_url, notes
        ),
        type=_parse_type(kind, limits.max_title_chars, notes),
        provider=check_provider(data.get("provider"), limits.max_title_chars, notes),
        images=check_images(data.get("images"), base_url, notes),
        related=check_related(data.get("related"), base_url, notes, limits.max_title_chars),
        origin=origin,
        line=line,
    )


def _parse_type(value: object, limit: int, notes: list[Note] | None) -> str | None:
    if value is None:
        return None
    return capped_text(value, "type", limit, notes, "[limits] max_title_chars") or None


def records_from_text(
    text: str,
    kind: str,
    origin: str,
    defaults: RecordDefaults,
    *,
    base_url: str | None = None,
) -> DocumentResult:
    """Parse a whole document; each bad record becomes a Problem, the rest are kept.

    `base_url`: for a remote document, its URL (relative links resolve against it).
    At most `[limits] max_items_per_source` records are read from one document.
    """
    try:
        raw = parse_document(text, kind, defaults.limits)
    except NotARecord as exc:
        return DocumentResult(
            problems=(Problem(origin, 1, None, str(exc), "file ignored", "warning"),)
        )
    except RecordError as exc:
        return DocumentResult(problems=(_problem(origin, exc, exc.line, "file skipped"),))
    return records_from_raw(raw, origin, defaults, base_url=base_url, text=text, kind=kind)


def records_from_raw(
    raw: Sequence[RawRecord],
    origin: str,
    defaults: RecordDefaults,
    *,
    base_url: str | None = None,
    text: str = "",
    kind: str = "json",
) -> DocumentResult:
    """Validate each raw record of one document; a bad one becomes a Problem, the rest
    are kept. `text` and `kind` (when known) let problems name the line of a field."""
    records: list[Record] = []
    problems: list[Problem] = []
    unpublished = 0
    limit = defaults.limits.max_items_per_source
    if len(raw) > limit:
        problems.append(
            Problem(
                origin,
                None,
                None,
                f"{len(raw):,} records, over the limit of {limit:,}"
                " ([limits] max_items_per_source)",
                f"the first {limit:,} kept",
                "warning",
            )
        )
        raw = raw[:limit]
    for item in raw:
        notes: list[Note] = []
        try:
            records.append(
                record_from_mapping(
                    item.data, defaults, origin, item.line, base_url=base_url, notes=notes
                )
            )
        except Unpublished:
            unpublished += 1
        except RecordError as exc:
            line = exc.line or _locate(text, kind, exc.field, item)
            problems.append(_problem(origin, exc, line, "record skipped", item.index))
        else:
            problems.extend(_warning(origin, text, kind, item, note) for note in notes)
    return DocumentResult(tuple(records), tuple(problems), unpublished)


def records_from_source(
    raw: Iterable[RawRecord], origin: str, source: SourceDefaults
) -> DocumentResult:
    """Validate the raw records of one fetched page (relative links resolve against its
    URL, `origin`); a bad one becomes a Problem, the others are kept with the source's
    topics added."""
    result = records_from_raw(list(raw), origin, source.records, base_url=origin)
    records = tuple(_with_topics(record, source.topics) for record in result.records)
    return replace(result, records=records)


def _with_topics(record: Record, topics: tuple[str, ...]) -> Record:
    known = {topic.casefold() for topic in record.topics}
    extra = tuple(topic for topic in topics if topic.casefold() not in known)
    return replace(record, topics=record.topics + extra) if extra else record


def load_record_file(path: str, defaults: RecordDefaults) -> DocumentResult:
    """Read and parse one record file. Never raises for bad content.

    Only regular files are read (a FIFO or device named `x.md` would block or never
    end), and the size limit is checked before reading.
    """
    try:
        text = bytes_to_text(read_record_bytes(path, defaults.limits.max_file_bytes))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return DocumentResult(problems=(Problem(path, None, None, reason, "file skipped"),))
    except RecordError as exc:
        return DocumentResult(problems=(_problem(path, exc, exc.line, "file skipped"),))
    return records_from_text(text, kind_for_suffix(os.path.splitext(path)[1]), path, defaults)


def read_record_bytes(path: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, else OSError / LimitExceeded."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        check_size(info.st_size, max_bytes)
        # One read of the size found (+1 to see the end); a file that grows meanwhile
        # is read on in chunks, never past the limit.
        data = os.read(fd, info.st_size + 1)
        if len(data) <= info.st_size:
            return data
        rest = iter(lambda: os.read(fd, _READ_CHUNK), b"")
        return read_capped(itertools.chain([data], rest), max_bytes)
    finally:
        os.close(fd)


def _problem(
    origin: str, exc: RecordError, line: int | None, action: str, index: int | None = None
) -> Problem:
    field = exc.field
    if index is not None:
        field = f"[{index}].{field}" if field else f"[{index}]"
    return Problem(origin, line, field, exc.reason, action)


def _warning(origin: str, text: str, kind: str, item: RawRecord, note: Note) -> Problem:
    line = _locate(text, kind, note.field, item)
    field_name = note.field if item.index is None else f"[{item.index}].{note.field}"
    return Problem(origin, line, field_name, note.reason, note.action, "warning")


def _locate(text: str, kind: str, field: str | None, item: RawRecord) -> int | None:
    """Best-effort line of a bad field: only for one-record documents, where it is unambiguous."""
    if field is None or item.index is not None or kind == "json":
        return item.line
    return field_line(text, field.split(".")[0].split("[")[0]) or item.line
