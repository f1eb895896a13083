"""Feed history: every item each feed has ever had, and its RFC 5005 archive documents.

A feed shows its top `max_items`; a reader that polls once a day misses the stories
that rose and fell in between. So each feed keeps a history in the state store
(namespace "archive"): the guids it has ever shown, in the order builds first saw
them (this also tells webhooks which items are new), and, with `[feeds] archive`,
archive pages of those items, append-only: a new item goes on the newest page, or on
a new page once that one holds `archive_page_size` items. A page never changes once
the next one exists. Each archived item is stored as it was when first archived, so
its guid, dates and text never change afterwards either.

The history is keyed by the feed's folder (its URLs), and built only from the items
of each FeedPlan, so it does not care how those items were chosen.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from aggregator.model import Record, record_from_values, record_values
from aggregator.rank import FeedPlan
from aggregator.state import StateStore
from aggregator.state.codec import Undecodable, pack, unpack
from aggregator.topics import topic_key

NAMESPACE = "archive"
HISTORY_KEY = "feed:"  # + the feed's folder ("" for the all-topics feed)
ITEM_KEY = "item:"  # + guid: the item as first archived, shared by every feed holding it


@dataclass(frozen=True, slots=True)
class History:
    seen: tuple[str, ...] = ()  # every guid the feed has shown, first seen first
    pages: tuple[tuple[str, ...], ...] = ()  # archive pages (guids), oldest first

    def to_bytes(self) -> bytes:
        return pack((self.seen, self.pages))

    @classmethod
    def from_bytes(cls, data: bytes) -> History:
        try:
            seen, pages = _unpack(data)
            return cls(tuple(seen), tuple(tuple(page) for page in pages))
        except (ValueError, TypeError, EOFError):
            return cls()  # a damaged entry: the history starts again


@dataclass(frozen=True, slots=True)
class FeedChange:
    """What one build did to one feed's history."""

    plan: FeedPlan
    new: tuple[Record, ...]  # items the feed never had before, in feed order
    history: History


class Histories:
    """Every feed's history in the state store."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def load(self, directory: str) -> History:
        data = self._store.get(NAMESPACE, HISTORY_KEY + directory)
        return History() if data is None else History.from_bytes(data)

    def item(self, guid: str) -> Record | None:
        data = self._store.get(NAMESPACE, ITEM_KEY + guid)
        if data is None:
            return None
        try:
            return record_from_values(list(_unpack(data)))
        except (ValueError, TypeError, EOFError, IndexError):
            return None

    def page(self, history: History, number: int) -> tuple[Record, ...]:
        """The items of archive page `number` (1 is the oldest), as first archived."""
        records = (self.item(guid) for guid in history.pages[number - 1])
        return tuple(record for record in records if record is not None)

    def advance(
        self,
        plans: Sequence[FeedPlan],
        names: dict[str, str],
        *,
        archive: bool,
        page_size: int,
    ) -> list[FeedChange]:
        """Add each feed's new items to its history (and archive, if on); one change
        per plan, in plan order. Saved in one transaction, before any file is written:
        the files follow from the state, and a build killed before writing them writes
        them next time."""
        changes, writes, items = [], [], []
        for plan in plans:
            before = self.load(plan.directory)
            seen = set(before.seen)
            guids = plan.guids  # items are read only if some are new (see StoriesOnRead)
            new = () if seen.issuperset(guids) else tuple(
                record for record in plan.items if record.guid not in seen)  # fmt: skip
            after = replace(before, seen=before.seen + tuple(r.guid for r in new))
            if archive:
                archived = {guid for page in before.pages for guid in page}
                fresh = [] if archived.issuperset(guids) else [
                    record for record in plan.items if record.guid not in archived]  # fmt: skip
                after = replace(after, pages=_append(before.pages, fresh, page_size))
                items.extend(fresh)
            if after != before:
                writes.append((HISTORY_KEY + plan.directory, after.to_bytes()))
            changes.append(FeedChange(plan, new, after))
        with self._store.transaction():
            stored = {record.guid for record in items if self._has(record.guid)}
            for record in items:
                if record.guid not in stored:  # an archived item never changes
                    stored.add(record.guid)
                    writes.append((ITEM_KEY + record.guid, _encode(record, names)))
            self._store.put_many(NAMESPACE, writes)
        return changes

    def _has(self, guid: str) -> bool:
        return self._store.get(NAMESPACE, ITEM_KEY + guid) is not None


def _append(
    pages: tuple[tuple[str, ...], ...], records: Sequence[Record], page_size: int
) -> tuple[tuple[str, ...], ...]:
    result = [list(page) for page in pages]
    for record in records:
        if not result or len(result[-1]) >= page_size:
            result.append([])
        result[-1].append(record.guid)
    return tuple(tuple(page) for page in result)


def _encode(record: Record, names: dict[str, str]) -> bytes:
    """The record with the topic names shown for it now, so a later change of spelling
    does not change an archived item."""
    shown = tuple(names.get(topic_key(name), name) for name in record.topics)
    return pack(record_values(replace(record, topics=shown)))


def _unpack(data: bytes) -> Any:
    """A value in the state's one codec, or in the plain marshal this namespace used
    before it (archives are not a cache: an upgrade must keep them)."""
    try:
        return unpack(data)
    except Undecodable:
        return marshal.loads(data)
