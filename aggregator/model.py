"""The data that flows through a build: records and what one document yields.

`Record` and its parts (`Provider`, `Image`, `Related`), `Note` (a change made to a kept
record), `DocumentResult` (the records and problems of one file or response body), and
the codec that turns a Record into plain values and back (`record_values`,
`record_from_values`, `field_values`) for the parse cache, the snapshot and the worker
processes. Making a Record from untrusted input is `validate.py`'s job.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from aggregator import markup
from aggregator.errors import Problem


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
    # The other copies of this story that clustering merged into it (other links, often
    # other outlets): shown as "Also covered by". Empty for a record read from a source.
    copies: tuple[Related, ...] = ()

    # `excerpt` is a safe HTML fragment: allow-listed markup ([records] excerpt_html =
    # "sanitize") or escaped plain text ("text"). This is its plain text.
    @property
    def excerpt_text(self) -> str:
        return markup.html_to_text(self.excerpt) if self.excerpt else ""

    @property
    def provider_key(self) -> str:
        """Who published it, for the per-provider cap: domain, else name, else link host."""
        provider = self.provider
        return provider_key(provider.name if provider else None,
                            provider.domain if provider else None, self.guid)  # fmt: skip

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled as plain values (see record_values): a process pool sends records
        # to its workers three times faster than as a slotted dataclass.
        return record_from_values, (record_values(self),)


def provider_key(name: str | None, domain: str | None, guid: str) -> str:
    """Record.provider_key of a provider's name and domain (None: no provider)."""
    if domain:
        return domain.lower()
    if name is not None:
        return name.casefold()
    return guid.split("/")[2]


# --- Record <-> plain values (for the parse cache, the snapshot and worker processes) --
# The field lists come from the dataclasses themselves, so a new plain field is carried
# without a change here.

_RECORD_FIELDS = tuple(f.name for f in fields(Record))
_R_PUBLISHED = _RECORD_FIELDS.index("published")
_R_UPDATED = _RECORD_FIELDS.index("updated")
_R_PROVIDER = _RECORD_FIELDS.index("provider")
_R_IMAGES = _RECORD_FIELDS.index("images")
_R_RELATED = _RECORD_FIELDS.index("related")
_R_COPIES = _RECORD_FIELDS.index("copies")
R_ORIGIN = _RECORD_FIELDS.index("origin")
R_TITLE = _RECORD_FIELDS.index("title")
R_GUID = _RECORD_FIELDS.index("guid")
R_PUBLISHED = _R_PUBLISHED
R_EXCERPT = _RECORD_FIELDS.index("excerpt")
R_PROVIDER = _R_PROVIDER


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def field_values(value: object) -> tuple[object, ...]:
    """A small frozen dataclass (Provider, Image, Related, Problem) as a tuple of its
    fields, in order: `type(value)(*values)` makes it again."""
    return tuple([getattr(value, name) for name in _field_names(type(value))])


def record_values(record: Record) -> list[object]:
    """The record as a list of plain values (str, int, float, None and tuples of them),
    which marshal and pickle carry fast; `record_from_values` makes it again."""
    values: list[object] = [getattr(record, name) for name in _RECORD_FIELDS]
    values[_R_PUBLISHED] = record.published.isoformat()
    values[_R_UPDATED] = record.updated.isoformat()
    values[_R_PROVIDER] = field_values(record.provider) if record.provider else None
    values[_R_IMAGES] = tuple(field_values(image) for image in record.images)
    values[_R_RELATED] = tuple(field_values(related) for related in record.related)
    values[_R_COPIES] = tuple(field_values(copy) for copy in record.copies)
    return values


def record_from_values(values: list[Any]) -> Record:
    """The Record `record_values` gave (the list is used up)."""
    values[_R_PUBLISHED] = datetime.fromisoformat(values[_R_PUBLISHED])
    values[_R_UPDATED] = datetime.fromisoformat(values[_R_UPDATED])
    if provider := values[_R_PROVIDER]:
        values[_R_PROVIDER] = Provider(*provider)
    if images := values[_R_IMAGES]:
        values[_R_IMAGES] = tuple([Image(*image) for image in images])
    if related := values[_R_RELATED]:
        values[_R_RELATED] = tuple([Related(*item) for item in related])
    if copies := values[_R_COPIES]:
        values[_R_COPIES] = tuple([Related(*item) for item in copies])
    return Record(*values)


@dataclass(frozen=True, slots=True)
class Note:
    """A change made to a kept record (a dropped link, a truncated text): a warning."""

    field: str
    reason: str
    action: str


@dataclass(frozen=True, slots=True)
class DocumentResult:
    """What one document (a file or a response body) yielded."""

    records: tuple[Record, ...] = ()
    problems: tuple[Problem, ...] = ()
    unpublished: int = 0
