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
from dataclasses import dataclass, fields
from datetime import datetime

from aggregator.errors import Problem
from aggregator.fetch import NO_VALIDATORS, Validators
from aggregator.records import DocumentResult, Image, Provider, Record, Related
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


def encode(state: UrlState) -> bytes:
    return FINGERPRINT + pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes | None) -> UrlState:
    """The stored state, or a fresh one if there is none or it is from another version."""
    if data is None or not data.startswith(FINGERPRINT):
        return UrlState()
    try:
        state = pickle.loads(data[len(FINGERPRINT) :])
    except Exception:  # a damaged entry is a cache miss, never an error
        return UrlState()
    return state if isinstance(state, UrlState) else UrlState()


class UrlStates:
    """Reads entries on demand; writes them all in one transaction at the end of a run."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._changed: dict[str, UrlState] = {}

    def get(self, url: str) -> UrlState:
        if url in self._changed:
            return self._changed[url]
        return decode(self._store.get(NAMESPACE, url))

    def set(self, url: str, state: UrlState) -> None:
        self._changed[url] = state

    def save(self) -> None:
        self._store.put_many(NAMESPACE, ((url, encode(s)) for url, s in self._changed.items()))
        self._changed.clear()
