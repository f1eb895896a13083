"""What a build remembers about each fetched URL, kept in the state store ("http").

Per URL: the validators for a conditional GET, the last good records (so a 304 or a
failure reuses them without parsing anything), where paging went next, when it last
succeeded, since when and why it has been failing, and a remembered permanent move.
Entries use the state's one codec (aggregator.state.codec): after an upgrade that
changes the record layout, old entries read as misses and each URL is fetched in full
once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from datetime import datetime

from aggregator.model import DocumentResult
from aggregator.sources.http import NO_VALIDATORS, Validators
from aggregator.state import StateStore
from aggregator.state.codec import Undecodable, pack, unpack
from aggregator.state.record_codec import result_from_values, result_values

NAMESPACE = "http"


@dataclass(frozen=True, slots=True)
class UrlState:
    etag: str | None = None
    last_modified: str | None = None
    result: DocumentResult | None = None  # the last good records; None: never succeeded
    next_page: str | None = None  # the `nextPage` the last good body pointed to
    succeeded_at: datetime | None = None
    failing_since: datetime | None = None
    failure: str | None = None
    moved_to: str | None = None  # target of a permanent redirect, fetched instead

    @property
    def validators(self) -> Validators:
        """Only worth sending when we still hold the records a 304 would point to."""
        if self.result is None:
            return NO_VALIDATORS
        return Validators(self.etag, self.last_modified)


_TIMES = ("succeeded_at", "failing_since")
_META = tuple(f.name for f in fields(UrlState) if f.name != "result")


def _encode_meta(state: UrlState) -> bytes:
    values = []
    for name in _META:
        value = getattr(state, name)
        values.append(value.isoformat() if name in _TIMES and value is not None else value)
    return pack(tuple(values))


def _decode_meta(data: bytes | None) -> UrlState:
    """The stored state, or an empty one if there is none or it cannot be read."""
    if data is None:
        return UrlState()
    try:
        values = unpack(data)
        named = dict(zip(_META, values, strict=True))
        for name in _TIMES:
            if named[name] is not None:
                named[name] = datetime.fromisoformat(named[name])
        return UrlState(**named)
    except (Undecodable, ValueError, TypeError):
        return UrlState()


def _encode_result(result: DocumentResult) -> bytes:
    return pack(result_values(result, origin=True))  # each record keeps its page's URL


def _decode_result(data: bytes | None) -> DocumentResult | None:
    if data is None:
        return None
    try:
        return result_from_values(unpack(data))
    except Undecodable:
        return None  # a damaged entry is a cache miss, never an error


class UrlStates:
    """Per-URL state in the store: "meta URL" (small) and "records URL" (the records).

    The two are apart so a 304, which only touches the meta, rewrites a few bytes and
    not the records. Reads happen on demand; writes all at once, in one transaction.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._loaded: dict[str, UrlState] = {}
        self._changed: dict[str, UrlState] = {}

    def get(self, url: str) -> UrlState:
        if url in self._changed:
            return self._changed[url]
        if url not in self._loaded:
            state = _decode_meta(self._store.get(NAMESPACE, f"meta {url}"))
            result = _decode_result(self._store.get(NAMESPACE, f"records {url}"))
            if result is not None:
                state = replace(state, result=result)
            self._loaded[url] = state
        return self._loaded[url]

    def set(self, url: str, state: UrlState) -> None:
        self._changed[url] = state

    def save(self, *, prune: bool = True, only: Collection[str] | None = None) -> None:
        """Write the changed states (with `only`, of those URLs alone: a fetch worker
        drops what it fetched for a source whose lease it lost); with `prune`, forget
        URLs this run did not touch (sources removed from the config, pages past the
        end), so the store stays small."""
        pairs: list[tuple[str, bytes]] = []
        for url, state in self._changed.items():
            if only is not None and url not in only:
                continue
            pairs.append((f"meta {url}", _encode_meta(state)))
            before = self._loaded.get(url)
            if state.result is not None and (before is None or before.result is not state.result):
                pairs.append((f"records {url}", _encode_result(state.result)))
        with self._store.transaction():
            if prune:
                touched = self._loaded.keys() | self._changed.keys()
                stale = [
                    key
                    for key in self._store.keys(NAMESPACE)
                    if key.partition(" ")[2] not in touched
                ]
                self._store.delete_many(NAMESPACE, stale)
            self._store.put_many(NAMESPACE, pairs)
        self._loaded.update(self._changed)
        self._changed.clear()
