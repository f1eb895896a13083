"""What a build remembers about each fetched URL, kept in the state store ("http").

Per URL: the validators for a conditional GET, the last good records (so a 304 or a
failure reuses them without parsing anything), where paging went next, when it last
succeeded, since when and why it has been failing, and a remembered permanent move.
Entries are pickled together with a fingerprint of the record model: after an upgrade
that changes the model, old entries are ignored and each URL is fetched in full once.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, fields, replace
from datetime import datetime

from aggregator.errors import Problem
from aggregator.model import DocumentResult, Image, Provider, Record, Related
from aggregator.sources.http import NO_VALIDATORS, Validators
from aggregator.state import StateStore

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


def _fingerprint() -> bytes:
    shapes = [
        f"{cls.__qualname__}({','.join(f.name for f in fields(cls))})"
        for cls in (UrlState, DocumentResult, Record, Provider, Image, Related, Problem)
    ]
    return hashlib.sha256(";".join(shapes).encode()).digest()[:8]


FINGERPRINT = _fingerprint()


def encode(value: object) -> bytes:
    return FINGERPRINT + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes | None, kind: type) -> object | None:
    """The stored value, or None if there is none, it is damaged or from another version."""
    if data is None or not data.startswith(FINGERPRINT):
        return None
    try:
        value = pickle.loads(data[len(FINGERPRINT) :])
    except Exception:  # a damaged entry is a cache miss, never an error
        return None
    return value if isinstance(value, kind) else None


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
            state = decode(self._store.get(NAMESPACE, f"meta {url}"), UrlState)
            if not isinstance(state, UrlState):
                state = UrlState()
            result = decode(self._store.get(NAMESPACE, f"records {url}"), DocumentResult)
            if isinstance(result, DocumentResult):
                state = replace(state, result=result)
            self._loaded[url] = state
        return self._loaded[url]

    def set(self, url: str, state: UrlState) -> None:
        self._changed[url] = state

    def save(self, *, prune: bool = True) -> None:
        """Write the changed states; with `prune`, forget URLs this run did not touch
        (sources removed from the config, pages past the end), so the store stays small."""
        pairs: list[tuple[str, bytes]] = []
        for url, state in self._changed.items():
            pairs.append((f"meta {url}", encode(replace(state, result=None))))
            before = self._loaded.get(url)
            if state.result is not None and (before is None or before.result is not state.result):
                pairs.append((f"records {url}", encode(state.result)))
        with self._store.transaction():
            if prune:
                touched = self._loaded.keys() | self._changed.keys()
                stale = [
                    key
                    for key in self._store.items(NAMESPACE)
                    if key.partition(" ")[2] not in touched
                ]
                self._store.delete_many(NAMESPACE, stale)
            self._store.put_many(NAMESPACE, pairs)
        self._loaded.update(self._changed)
        self._changed.clear()
