"""`aggregator fetch`: a fetch worker. Any number of them, on any number of machines,
share the remote sources through PostgreSQL (`[state] url`).

Each worker registers the config's `url` sources (aggregator.state.queue), then over
and over claims up to `[fetch] concurrency` due sources under a lease of `[fetch]
lease_seconds`, fetches them through the same code as a build (sources/remote.py:
conditional GET, retries, paging, one source's failure kept to itself), and in one
transaction stores their pages' states and records (the "http" namespace, which the
builder reads) and releases them with their next due time (sources/schedule.py). A
source whose lease ran out before the release (the worker was stuck, and another took
it) keeps what the other worker stores: this one's results for it are dropped.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace

from aggregator import __version__
from aggregator.config import Config, FilterConfig, SourceConfig
from aggregator.errors import ConfigError, Problem
from aggregator.progress import Progress
from aggregator.sources.http_cache import UrlStates
from aggregator.sources.remote import FetchSession, fetch_remote
from aggregator.sources.results import RemoteCollection, SourceOutcome
from aggregator.sources.schedule import next_delay, source_interval
from aggregator.state import open_store
from aggregator.state.postgres import PostgresStore
from aggregator.state.queue import (
    DUE_CHANNEL,
    Claim,
    Registered,
    Registration,
    Release,
    SourceQueue,
)
from aggregator.validate import RecordDefaults

IDLE_WAIT = 30.0  # seconds a long-running worker sleeps at most between looks for work
STOP_CHECK = 0.5  # seconds between looks at the stop flag while idle
LEASE_SHARE = 0.8  # a batch must be done within this share of its lease


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def source_digest(config: Config, source: SourceConfig) -> bytes:
    """The settings a source's stored records depend on: a change makes it due now."""
    fetched = replace(source, name="", interval=None, filters=FilterConfig())
    shaping = (fetched, config.records, config.limits, config.fetch.max_bytes, __version__)
    return hashlib.sha256(repr(shaping).encode()).digest()


def registrations(config: Config) -> list[Registration]:
    """One per remote URL of the config (the first source that names it)."""
    found: dict[str, Registration] = {}
    for source in config.sources:
        if source.url is not None and source.url not in found:
            found[source.url] = Registration(
                source.url, source_digest(config, source), source_interval(config, source)
            )
    return list(found.values())


@dataclass(slots=True)
class WorkerReport:
    """What one worker did (so far)."""

    batches: int = 0
    fetched: int = 0  # sources fetched and released
    failing: int = 0  # of those, with a failed page
    lost: int = 0  # fetched, but the lease had run out and another worker took them
    changed: int = 0  # pages whose body was received
    not_modified: int = 0
    errors: int = 0  # problems reported as errors (each reported as it was found)
    seconds: float = 0.0

    def summary(self) -> str:
        lost = f", {self.lost} lost their lease" if self.lost else ""
        return (f"fetched {self.fetched} sources in {self.seconds:.1f} s: {self.changed} "
                f"pages changed, {self.not_modified} not modified, {self.failing} "
                f"failing{lost}")  # fmt: skip


class FetchWorker:
    """One worker: `run` until stopped (or one pass with `once`)."""

    def __init__(
        self,
        config: Config,
        store: PostgresStore,
        owner: str,
        *,
        report: Callable[[Problem], None] = lambda problem: None,
        progress: Progress | None = None,
    ) -> None:
        self._store = store
        self._queue = SourceQueue(store)
        self._owner = owner
        self._report = report
        self._progress = progress
        lease = config.fetch.lease_seconds
        # A batch ends within its lease, so a healthy worker never loses one.
        deadline = min(config.fetch.build_deadline, lease * LEASE_SHARE)
        self._config = replace(config, fetch=replace(config.fetch, build_deadline=deadline))
        self._sources: dict[str, SourceConfig] = {}
        for source in config.sources:
            if source.url is not None:
                self._sources.setdefault(source.url, source)
        self._defaults = RecordDefaults.from_config(config)
        self._closing = ExitStack()
        # One HTTP client and thread pool for every batch (a client costs ~50 ms to make).
        self._session = self._closing.enter_context(FetchSession.open(self._config))

    @classmethod
    def open(cls, config: Config, owner: str, **options: object) -> FetchWorker:
        """The worker on the configured PostgreSQL store; a config without `[state]
        url` is a ConfigError (workers share their state; with SQLite, `aggregator build`
        fetches the sources itself)."""
        if config.state.url is None:
            raise ConfigError(str(config.path), "state.url", "expected a postgresql:// URL: "
                              "fetch workers share their state in PostgreSQL (with the "
                              "SQLite state file, 'aggregator build' fetches the sources "
                              "itself)")  # fmt: skip
        store = open_store(config)
        assert isinstance(store, PostgresStore)
        return cls(config, store, owner, **options)  # type: ignore[arg-type]

    def close(self) -> None:
        self._closing.close()
        self._store.close()

    def __enter__(self) -> FetchWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def register(self) -> Registered:
        return self._queue.register(registrations(self._config))

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> WorkerReport:
        """Register, then claim, fetch and release batches: until nothing is due (with
        `once`: each source at most once), or until `stop` is set (between batches)."""
        started = time.monotonic()
        stop = stop or threading.Event()
        report = WorkerReport()
        if not once:
            self._store.listen(DUE_CHANNEL)  # before registering: no notice is missed
        self.register()
        done: list[str] = []
        urls = list(self._sources)
        while urls and not stop.is_set():
            fetched = self.run_batch(report, exclude=done if once else ())
            if fetched:
                done.extend(fetched)
                continue
            if once:
                break
            wait = self._queue.seconds_until_due(urls)
            self._idle(IDLE_WAIT if wait is None else min(max(wait, 0.01), IDLE_WAIT), stop)
        report.seconds = time.monotonic() - started
        return report

    def _idle(self, seconds: float, stop: threading.Event) -> None:
        """Sleep until the next source is due, a notice says sources became due, or
        `stop` is set (looked at every STOP_CHECK seconds)."""
        end = time.monotonic() + seconds
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or self._store.wait_for_notice(min(left, STOP_CHECK)):
                return

    def run_batch(self, report: WorkerReport, exclude: list[str] | tuple[str, ...] = ()
                  ) -> list[str]:  # fmt: skip
        """Claim, fetch and release one batch; the URLs claimed (none: nothing due)."""
        fetch = self._config.fetch
        claims = self._queue.claim(self._owner, fetch.concurrency, fetch.lease_seconds,
                                   list(self._sources), exclude)  # fmt: skip
        if not claims:
            return []
        by_url = {claim.url: claim for claim in claims}
        batch = replace(self._config, sources=tuple(self._sources[url] for url in by_url))
        states = UrlStates(self._store)
        remote = fetch_remote(batch, states, self._progress, defaults=self._defaults,
                              session=self._session)  # fmt: skip
        releases = [self._release(by_url[outcome.url], outcome) for outcome in remote.outcomes]
        with self._store.transaction():
            held = self._queue.release(self._owner, claims[0].token, releases)
            pages = {page for outcome in remote.outcomes if outcome.url in held
                     for page in outcome.pages}  # fmt: skip
            states.save(prune=False, only=pages)
        self._account(report, remote, held, len(claims))
        return list(by_url)

    def _release(self, claim: Claim, outcome: SourceOutcome) -> Release:
        failures = claim.failures + 1 if outcome.failed else 0
        delay = next_delay(self._config.fetch, claim.interval, failures=failures,
                           retry_after=outcome.retry_after, max_age=outcome.max_age)  # fmt: skip
        return Release(claim.url, failures, delay, outcome.reason or "ok")

    def _account(
        self, report: WorkerReport, remote: RemoteCollection, held: set[str], claimed: int
    ) -> None:
        report.batches += 1
        report.fetched += len(held)
        report.lost += claimed - len(held)
        report.failing += sum(1 for o in remote.outcomes if o.failed and o.url in held)
        report.changed += remote.stats.changed
        report.not_modified += remote.stats.not_modified
        for result in remote.results:
            for problem in result.problems:
                report.errors += problem.severity == "error"
                self._report(problem)
