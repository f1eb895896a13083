"""What collecting the remote sources gives a build: their records and the counts.

Apart from sources/remote.py so that a build of local folders only never imports the HTTP
stack (httpx and feedparser cost a quarter of the start-up time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aggregator.wording import plural

if TYPE_CHECKING:
    from aggregator.model import DocumentResult


@dataclass(frozen=True, slots=True)
class FetchStats:
    sources: int = 0  # remote sources in the config
    pages: int = 0  # pages that contributed records (fetched, not modified or kept)
    changed: int = 0  # pages whose body was received (2xx)
    not_modified: int = 0  # pages answered with 304
    failing: int = 0  # sources with a page that failed
    bodies_parsed: int = 0  # response bodies handed to a parser
    requests: int = 0  # HTTP requests, retries and redirects included
    stored: bool = False  # read as fetch workers stored them, not fetched ([state] url)
    unfetched: int = 0  # (stored) sources no worker has fetched yet

    def summary(self) -> str:
        if self.stored:
            waiting = f", {self.unfetched} not fetched yet" if self.unfetched else ""
            return (f"{plural(self.sources, 'remote source')} as the fetch workers stored "
                    f"them: {plural(self.failing, 'source')} failing{waiting}")  # fmt: skip
        return (
            f"{plural(self.sources, 'remote source')}: {plural(self.changed, 'page')} changed, "
            f"{self.not_modified} not modified, {plural(self.failing, 'source')} failing; "
            f"{plural(self.bodies_parsed, 'body', 'bodies')} parsed"
        )


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """How fetching one remote source went, for its schedule (aggregator fetch)."""

    url: str  # the source's configured URL
    failed: bool  # a page failed (its last good records were kept)
    reason: str | None = None  # why, for the schedule's record
    retry_after: float | None = None  # what the failing server asked for, in seconds
    max_age: float | None = None  # Cache-Control max-age of the first page
    pages: tuple[str, ...] = ()  # page URLs whose stored state this fetch changed


@dataclass(frozen=True, slots=True)
class RemoteCollection:
    results: tuple[DocumentResult, ...] = ()
    stats: FetchStats = field(default_factory=FetchStats)
    sources: tuple[int, ...] = ()  # each result's source: its index in config.sources
    outcomes: tuple[SourceOutcome, ...] = ()  # one per remote source fetched, in order
