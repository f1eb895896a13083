"""The build pipeline: sources -> records -> merge -> rank -> render -> publish."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.config import Config, SourceConfig
from aggregator.errors import ConfigError, Problem
from aggregator.merge import merge_duplicates
from aggregator.progress import Progress, progress_for
from aggregator.publish import remove_stale_temp_files, write_if_changed
from aggregator.rank import FeedPlan, plan_feeds
from aggregator.records import DocumentResult, Record, RecordDefaults, load_record_file
from aggregator.remote_sources import FetchStats, collect_remote_sources
from aggregator.render.feeds import STYLESHEET_NAME, feed_stylesheet, render_feeds
from aggregator.render.html import render_pages
from aggregator.render.jsonfeed import JSON_FEED_NAME, render_json_feed
from aggregator.render.opml import OPML_NAME, render_opml
from aggregator.sources import iter_record_files


@dataclass(frozen=True, slots=True)
class Collection:
    """Everything read from the sources, before merging."""

    records: tuple[Record, ...]
    problems: tuple[Problem, ...]
    documents: int
    unpublished: int
    fetch: FetchStats = field(default_factory=FetchStats)


@dataclass(frozen=True, slots=True)
class BuildReport:
    documents: int
    records: int  # valid, published records read
    rejected: int  # problems that cost a record or a file
    unpublished: int
    duplicates: int
    items: int  # distinct stories after merging
    feeds: int  # RSS and Atom documents made
    written: int  # output files whose bytes changed
    files: int = 0  # every output file made: feeds, JSON Feeds, pages, OPML, stylesheet
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0
    written_paths: tuple[Path, ...] = field(default=())
    fetch: FetchStats = field(default_factory=FetchStats)

    def summary(self) -> str:
        remote = f"; {self.fetch.summary()}" if self.fetch.sources else ""
        return (
            f"{self.records} records from {self.documents} files: {self.rejected} rejected, "
            f"{self.unpublished} unpublished, {self.duplicates} duplicates merged; "
            f"{self.items} stories in {self.feeds // 2} feeds; "
            f"wrote {self.written} of {self.files} files in {self.seconds:.2f} s{remote}"
        )


def record_defaults(config: Config) -> RecordDefaults:
    return RecordDefaults(
        config.records.default_quality,
        config.records.default_heat,
        config.records.tracking_params,
    )


def _source_paths(source: SourceConfig, index: int, config: Config) -> list[Path]:
    assert source.path is not None
    if not source.path.is_dir():
        raise ConfigError(str(config.path), f"sources[{index}].path",
                          f"expected an existing directory, {source.path} is not one")  # fmt: skip
    return list(iter_record_files(source.path))


def collect(
    config: Config, progress: Progress | None = None, *, persist: bool = True
) -> Collection:
    """Read every source. Bad input becomes Problems; it never raises for content."""
    defaults = record_defaults(config)
    results: list[DocumentResult] = []
    for index, source in enumerate(config.sources):
        if source.path is None:
            continue  # remote: fetched together, below
        results.extend(
            load_record_file(str(p), defaults) for p in _source_paths(source, index, config)
        )
    remote = collect_remote_sources(config, progress or progress_for(sys.stderr), persist, defaults)
    results.extend(remote.results)
    return Collection(
        records=tuple(r for result in results for r in result.records),
        problems=tuple(p for result in results for p in result.problems),
        documents=len(results),
        unpublished=sum(result.unpublished for result in results),
        fetch=remote.stats,
    )


def feed_files(plan: FeedPlan) -> tuple[str, str]:
    """Paths of a plan's RSS and Atom files, relative to the output folder."""
    prefix = f"{plan.directory}/" if plan.directory else ""
    return f"{prefix}rss.xml", f"{prefix}atom.xml"


def subscriber_files(
    config: Config, plans: list[FeedPlan], names: dict[str, str]
) -> dict[str, bytes]:
    """The files beside the RSS/Atom feeds: JSON Feeds, HTML pages, OPML and the stylesheet."""
    files = {
        f"{plan.directory}/{JSON_FEED_NAME}".lstrip("/"): render_json_feed(config.site, plan, names)
        for plan in plans
    }
    files.update(render_pages(config.site, plans))
    files[OPML_NAME] = render_opml(config.site, plans)
    files[STYLESHEET_NAME] = feed_stylesheet()
    return files


def build(
    config: Config,
    output_dir: Path | None = None,
    *,
    write: bool = True,
    clock: Callable[[], float] = time.perf_counter,
    progress: Progress | None = None,
) -> BuildReport:
    """Run the whole pipeline; with `write=False` only read and check (nothing is written).

    `progress` shows fetching; by default a bar on stderr when it is a terminal.
    """
    started = clock()
    collection = collect(config, progress, persist=write)
    stories, duplicates = merge_duplicates(collection.records)
    plans, topics = plan_feeds(stories, config.ranking, config.feeds.max_items)
    names = {key: topic.name for key, topic in topics.items()}
    output = output_dir or config.site.output_dir
    written: list[Path] = []
    extra: dict[str, bytes] = {}
    if write:
        key = "site.output_dir" if output_dir is None else "--output"
        try:
            remove_stale_temp_files(output)
            for plan in plans:
                for relative, data in zip(
                    feed_files(plan), render_feeds(config.site, plan, names), strict=True
                ):
                    target = output / relative
                    if write_if_changed(target, data):
                        written.append(target)
            extra = subscriber_files(config, plans, names)
            for relative, data in extra.items():
                if write_if_changed(output / relative, data):
                    written.append(output / relative)
        except OSError as exc:
            # An output folder we cannot write is a setting to fix, not a crash.
            reason = f"expected a writable folder; {exc.filename or output}: {exc.strerror or exc}"
            raise ConfigError(str(config.path), key, reason) from None
    return BuildReport(
        documents=collection.documents,
        records=len(collection.records),
        rejected=sum(1 for p in collection.problems if p.severity == "error"),
        unpublished=collection.unpublished,
        duplicates=duplicates,
        items=len(stories),
        feeds=2 * len(plans) if write else 0,
        files=2 * len(plans) + len(extra) if write else 0,
        written=len(written),
        problems=collection.problems,
        seconds=clock() - started,
        written_paths=tuple(written),
        fetch=collection.fetch,
    )
