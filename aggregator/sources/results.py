"""What collecting the remote sources gives a build: their records and the counts.

Apart from sources/remote.py so that a build of local folders only never imports the HTTP
stack (httpx and feedparser cost a quarter of the start-up time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aggregator.model import DocumentResult
from aggregator.wording import plural


@dataclass(frozen=True, slots=True)
class FetchStats:
    sources: int = 0  # remote sources in the config
    pages: int = 0  # pages that contributed records (fetched, not modified or kept)
    changed: int = 0  # pages whose body was received (2xx)
    not_modified: int = 0  # pages answered with 304
    failing: int = 0  # sources with a page that failed
    bodies_parsed: int = 0  # response bodies handed to a parser
    requests: int = 0  # HTTP requests, retries and redirects included

    def summary(self) -> str:
        return (
            f"{plural(self.sources, 'remote source')}: {plural(self.changed, 'page')} changed, "
            f"{self.not_modified} not modified, {plural(self.failing, 'source')} failing; "
            f"{plural(self.bodies_parsed, 'body', 'bodies')} parsed"
        )


@dataclass(frozen=True, slots=True)
class RemoteCollection:
    results: tuple[DocumentResult, ...] = ()
    stats: FetchStats = field(default_factory=FetchStats)
    sources: tuple[int, ...] = ()  # each result's source: its index in config.sources
