"""Collect records from every `url` source: fetch, page, cache, and isolate failures.

Per page URL the state store keeps the last good records, so:
- a 304 reuses them without parsing anything;
- a failing page (DNS, refused, timeout, 4xx, 5xx, a body that does not parse)
  contributes them, and so do the pages after it (from the store, not fetched), and
  the source is reported on one line: what failed, why, and since when;
- a source that never succeeded contributes nothing.

Paging: page N's URL is the `next_page` template (default "page/{n}/index.json", {n} = the
`nextPage` value) resolved against the first page's URL, so `api/news/index.json` is
followed by `api/news/page/2/index.json`. A `nextPage` holding a link (with a "/") is
followed as that link. Paging stops at a null `nextPage`, at `max_pages`, or at a
page seen before.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import quote, urljoin

from aggregator.config import Config, SourceConfig
from aggregator.errors import Problem
from aggregator.limits import take_items
from aggregator.model import DocumentResult
from aggregator.parse.feeds import UnparseableBody, parse_body
from aggregator.progress import Progress, SilentProgress
from aggregator.sources.http import (
    Clock,
    Deadline,
    Fetcher,
    FetchError,
    NotModified,
    Sleep,
    utc_now,
)
from aggregator.sources.http_cache import UrlState, UrlStates
from aggregator.sources.results import FetchStats, RemoteCollection
from aggregator.state import StateStore, open_store
from aggregator.validate import RecordDefaults, SourceDefaults, records_from_source
from aggregator.wording import plural


@dataclass(frozen=True, slots=True)
class _Page:
    result: DocumentResult
    next_page: str | None
    failure: Problem | None = None  # set when this page failed (result = its kept records)
    last_good: datetime | None = None  # for a failed page: when it last succeeded


def page_url(first_page: str, template: str, next_page: str) -> str:
    """The URL of the page `nextPage` names; see the module docstring."""
    if "/" in next_page:
        return urljoin(first_page, next_page)
    return urljoin(first_page, template.replace("{n}", quote(next_page, safe="")))


def collect_remote(
    config: Config,
    store: StateStore,
    progress: Progress | None = None,
    *,
    persist: bool = True,
    defaults: RecordDefaults | None = None,
    now: Clock = utc_now,
    sleep: Sleep = time.sleep,
) -> RemoteCollection:
    """Fetch every `url` source; never raises for what a server does.

    Sources are fetched by `[fetch] concurrency` threads; the state store is only
    touched here, in the calling thread: each source's stored pages are read before
    and its new states written after. With `persist=False` (aggregator check) the
    store is read but not written. `defaults` are the build's record defaults
    (RecordDefaults.from_config); without them they are made from the config.
    """
    sources = [source for source in config.sources if source.url is not None]
    if not sources:
        return RemoteCollection()
    states = UrlStates(store)
    runs = [_SourceRun(source, _stored_pages(states, source)) for source in sources]
    progress = progress or SilentProgress()
    progress.start(len(runs))
    try:
        with (
            Fetcher.open(config.fetch, sleep=sleep, now=now) as fetcher,
            ThreadPoolExecutor(config.fetch.concurrency, "aggregator-fetch") as pool,
        ):
            defaults = defaults or RecordDefaults.from_config(config)
            limit = config.fetch.build_deadline
            # Every source, queued or running, is done by then: a cron build ends.
            build_deadline = Deadline.after(
                limit, f"fetching every source took over {limit:g} s ([fetch] build_deadline)"
            )
            collector = _Collector(config, fetcher, now, defaults, build_deadline)
            futures = {pool.submit(collector.collect, run): run for run in runs}
            for future in as_completed(futures):
                progress.advance(futures[future].source.name)
            per_source = [future.result() for future in futures]
            requests = fetcher.requests
    finally:
        progress.finish()
    counts: Counter[str] = Counter()
    for run in runs:
        counts.update(run.counts)
        for url, state in run.updated.items():
            states.set(url, state)
    if persist:
        states.save()
    stats = FetchStats(len(sources), counts["pages"], counts["changed"], counts["not_modified"],
                       counts["failing"], counts["parsed"], requests)  # fmt: skip
    positions = {id(source): index for index, source in enumerate(config.sources)}
    owners = tuple(positions[id(s)] for s, results in zip(sources, per_source, strict=True)
                   for _ in results)  # fmt: skip
    return RemoteCollection(tuple(r for results in per_source for r in results), stats, owners)


def collect_remote_sources(
    config: Config, progress: Progress, persist: bool, defaults: RecordDefaults
) -> RemoteCollection:
    """`collect_remote` with the state store at `[build] state_path` opened around it."""
    if not any(source.url for source in config.sources):
        return RemoteCollection()
    warnings: list[str] = []
    path = config.build.state_path
    with open_store(config, warnings.append) as store:
        remote = collect_remote(config, store, progress, persist=persist, defaults=defaults)
    notes = tuple(
        Problem(str(path), None, None, w.removeprefix(f"{path}: "), "cache reset", "warning")
        for w in warnings
    )
    if notes:
        remote = replace(remote, results=(DocumentResult(problems=notes), *remote.results),
                         sources=(-1, *remote.sources))  # fmt: skip
    return remote


@dataclass(slots=True)
class _SourceRun:
    """One source's work: read by one fetch thread, handed back to the calling thread."""

    source: SourceConfig
    stored: dict[str, UrlState]  # its pages' states as stored, read beforehand
    updated: dict[str, UrlState] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def state(self, url: str) -> UrlState:
        return self.updated.get(url) or self.stored.get(url) or UrlState()


def _stored_pages(states: UrlStates, source: SourceConfig) -> dict[str, UrlState]:
    """The states of the pages the last run walked through, following stored nextPages."""
    assert source.url is not None
    stored: dict[str, UrlState] = {}
    url: str | None = source.url
    while url is not None and url not in stored and len(stored) < source.max_pages:
        state = stored[url] = states.get(url)
        next_page = state.next_page if state.result is not None else None
        url = page_url(source.url, source.next_page, next_page) if next_page else None
    return stored


class _Collector:
    """Fetches and parses the pages of one source at a time; safe to call from threads."""

    def __init__(
        self,
        config: Config,
        fetcher: Fetcher,
        now: Clock,
        defaults: RecordDefaults,
        deadline: Deadline | None = None,
    ) -> None:
        self._deadline = deadline
        self._config = config
        self._fetcher = fetcher
        self._now = now
        self._defaults_all = defaults  # the build's; a source may override quality/heat

    def collect(self, run: _SourceRun) -> list[DocumentResult]:
        source = run.source
        assert source.url is not None
        pages: list[_Page] = []
        failed_at: int | None = None  # index of the page that failed
        seen: set[str] = set()
        url: str | None = source.url
        limit = self._config.fetch.source_deadline
        deadline = Deadline.after(
            limit, f"its pages took over {limit:g} s ([fetch] source_deadline)"
        ).earliest(self._deadline)
        while url is not None and len(pages) < source.max_pages and url not in seen:
            seen.add(url)
            if failed_at is None:
                page = self._page(run, url, len(pages) + 1, deadline)
                if page.failure is not None:
                    failed_at = len(pages)
            else:  # after a failure, later pages come from the store, unfetched
                stored = run.state(url)
                if stored.result is None:
                    break
                page = _Page(stored.result, stored.next_page)
            pages.append(page)
            url = page_url(source.url, source.next_page, page.next_page) if page.next_page else None
        run.counts["pages"] += len(pages)
        results = [page.result for page in pages]
        if failed_at is not None:
            run.counts["failing"] += 1
            report = self._failure_report(pages, failed_at)
            results[failed_at] = _with_problems(results[failed_at], (report,))
        return self._capped(source.url, results)

    def _capped(self, origin: str, results: list[DocumentResult]) -> list[DocumentResult]:
        """At most `[limits] max_items_per_source` records from all pages of a source."""
        limit, taken, capped = self._defaults_all.limits.max_items_per_source, 0, []
        for result in results:
            records, left_out = take_items(result.records, limit, taken)
            taken += len(records)
            if left_out:
                reason = f"{left_out:,} more records, over the limit of {limit:,} for one source"
                note = Problem(origin, None, None, f"{reason} ([limits] max_items_per_source)",
                               "left out", "warning")  # fmt: skip
                result = replace(result, records=tuple(records), problems=(*result.problems, note))
            capped.append(result)
        return capped

    @staticmethod
    def _failure_report(pages: list[_Page], failed_at: int) -> Problem:
        """One line for a failing source: what failed, why, since when, and what was kept."""
        failed = pages[failed_at]
        assert failed.failure is not None
        kept = sum(len(page.result.records) for page in pages[failed_at:])
        if kept:
            when = f" ({_when(failed.last_good)})" if failed.last_good else ""
            action = f"kept its {plural(kept, 'record')} from the last good fetch{when}"
        elif failed_at == 0:
            action = "nothing published from it: it has never been fetched successfully"
        else:
            action = "nothing kept for this page: never fetched successfully"
        if failed_at:
            used = "page 1" if failed_at == 1 else f"pages 1-{failed_at}"
            action += f"; {used} still used"
        return replace(failed.failure, action=action)

    def _page(self, run: _SourceRun, url: str, number: int, deadline: Deadline) -> _Page:
        source, state = run.source, run.state(url)
        origin = source.name if number == 1 else f"{url} (page {number} of {source.name})"
        target = state.moved_to or url
        try:
            response = self._fetcher.fetch(target, state.validators, source.timeout, deadline)
        except FetchError as exc:
            return self._failed(run, url, origin, exc.reason, forget_move=True)
        moved_to = response.moved_to or state.moved_to
        notes = self._moved_notes(origin, moved_to)
        if isinstance(response, NotModified):
            if state.result is None:
                return self._failed(
                    run, url, origin, "HTTP 304 Not Modified, but no copy is stored"
                )
            run.counts["not_modified"] += 1
            run.updated[url] = replace(self._succeeded(state), moved_to=moved_to)
            return _Page(_with_problems(state.result, notes), state.next_page)
        run.counts["changed"] += 1
        run.counts["parsed"] += 1
        try:
            parsed = parse_body(
                response.body, response.content_type, response.url, self._defaults_all.limits
            )
        except UnparseableBody as exc:
            where = f"line {exc.line}: " if exc.line else ""
            return self._failed(run, url, origin, f"body not usable: {where}{exc.reason}")
        # Relative links in the body resolve against the URL it came from.
        result = records_from_source(parsed.records, response.url, self._defaults(source))
        before = len(state.result.records) if state.result is not None else 0
        if before and not result.records:
            # An emptied feed is far likelier a broken server than a publisher who took
            # every story down: the last good copy stays until records come back.
            reason = f"body has no usable records, where the last good copy had {before}"
            page = self._failed(run, url, origin, reason)
            return replace(page, result=_with_problems(page.result, result.problems))
        stored = replace(
            self._succeeded(state),
            etag=response.validators.etag,
            last_modified=response.validators.last_modified,
            result=result,
            next_page=parsed.next_page,
            moved_to=moved_to,
        )
        run.updated[url] = stored
        return _Page(_with_problems(result, notes), parsed.next_page)

    def _failed(
        self, run: _SourceRun, url: str, origin: str, reason: str, *, forget_move: bool = False
    ) -> _Page:
        state = run.state(url)
        since = state.failing_since or self._now()
        failed = replace(state, failing_since=since, failure=reason)
        if forget_move:
            failed = replace(failed, moved_to=None)  # try the configured URL next time
        run.updated[url] = failed
        problem = Problem(origin, None, None, f"{reason} (failing since {_when(since)})", "")
        kept = state.result or DocumentResult()
        next_page = state.next_page if state.result else None
        return _Page(kept, next_page, problem, state.succeeded_at)

    def _succeeded(self, state: UrlState) -> UrlState:
        return replace(state, succeeded_at=self._now(), failing_since=None, failure=None)

    def _defaults(self, source: SourceConfig) -> SourceDefaults:
        quality = self._defaults_all.quality if source.quality is None else source.quality
        heat = self._defaults_all.heat if source.heat is None else source.heat
        return SourceDefaults(
            replace(self._defaults_all, quality=quality, heat=heat), source.topics
        )

    @staticmethod
    def _moved_notes(origin: str, moved_to: str | None) -> tuple[Problem, ...]:
        if moved_to is None:
            return ()
        reason = f"moved permanently to {moved_to}"
        action = "fetched from there; update the config"
        return (Problem(origin, None, None, reason, action, "warning"),)


def _with_problems(result: DocumentResult, problems: tuple[Problem, ...]) -> DocumentResult:
    return replace(result, problems=result.problems + problems) if problems else result


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
