"""The build pipeline: sources -> records -> merge -> rank -> render -> publish."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.config import Config, SourceConfig
from aggregator.errors import ConfigError, Problem
from aggregator.merge import merge_duplicates
from aggregator.publish import (
    UnsafePath,
    remove_stale_temp_files,
    target_path,
    write_if_changed,
)
from aggregator.rank import FeedPlan, plan_feeds
from aggregator.records import DocumentResult, Record, RecordDefaults, load_record_file
from aggregator.render.feeds import render_feeds
from aggregator.sources import iter_record_files


@dataclass(frozen=True, slots=True)
class Collection:
    """Everything read from the sources, before merging."""

    records: tuple[Record, ...]
    problems: tuple[Problem, ...]
    documents: int
    unpublished: int


@dataclass(frozen=True, slots=True)
class BuildReport:
    documents: int
    records: int  # valid, published records read
    rejected: int  # problems that cost a record or a file
    unpublished: int
    duplicates: int
    items: int  # distinct stories after merging
    feeds: int  # feed files made
    written: int  # feed files whose bytes changed
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0
    written_paths: tuple[Path, ...] = field(default=())

    def summary(self) -> str:
        return (
            f"{self.records} records from {self.documents} files: {self.rejected} rejected, "
            f"{self.unpublished} unpublished, {self.duplicates} duplicates merged; "
            f"{self.items} stories; wrote {self.written} of {self.feeds} feed files "
            f"in {self.seconds:.2f} s"
        )


def record_defaults(config: Config) -> RecordDefaults:
    return RecordDefaults(
        config.records.default_quality,
        config.records.default_heat,
        config.records.tracking_params,
        config.records.excerpt_html,
        config.limits,
    )


def _source_paths(source: SourceConfig, index: int, config: Config) -> list[Path]:
    assert source.path is not None
    if not source.path.is_dir():
        raise ConfigError(str(config.path), f"sources[{index}].path",
                          f"expected an existing directory, {source.path} is not one")  # fmt: skip
    return list(iter_record_files(source.path))


def collect(config: Config) -> Collection:
    """Read every source. Bad input becomes Problems; it never raises for content."""
    defaults = record_defaults(config)
    results: list[DocumentResult] = []
    for index, source in enumerate(config.sources):
        if source.path is None:
            raise ConfigError(str(config.path), f"sources[{index}].url",
                              "remote sources are not supported yet; use 'path'")  # fmt: skip
        results.extend(
            load_record_file(str(p), defaults) for p in _source_paths(source, index, config)
        )
    return Collection(
        records=tuple(r for result in results for r in result.records),
        problems=tuple(p for result in results for p in result.problems),
        documents=len(results),
        unpublished=sum(result.unpublished for result in results),
    )


def feed_files(plan: FeedPlan) -> tuple[str, str]:
    """Paths of a plan's RSS and Atom files, relative to the output folder."""
    prefix = f"{plan.directory}/" if plan.directory else ""
    return f"{prefix}rss.xml", f"{prefix}atom.xml"


def build(
    config: Config,
    output_dir: Path | None = None,
    *,
    write: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> BuildReport:
    """Run the whole pipeline; with `write=False` only read and check (nothing is written)."""
    started = clock()
    collection = collect(config)
    stories, duplicates = merge_duplicates(collection.records)
    plans, topics = plan_feeds(stories, config.ranking, config.feeds.max_items)
    names = {key: topic.name for key, topic in topics.items()}
    output = output_dir or config.site.output_dir
    written: list[Path] = []
    refused: list[Problem] = []
    if write:
        remove_stale_temp_files(output)
        for plan in plans:
            for relative, data in zip(
                feed_files(plan), render_feeds(config.site, plan, names), strict=True
            ):
                try:
                    target = target_path(output, relative)
                except UnsafePath as exc:
                    refused.append(Problem(str(output / relative), None, None, exc.reason,
                                           "feed not written"))  # fmt: skip
                    continue
                if write_if_changed(target, data):
                    written.append(target)
    return BuildReport(
        documents=collection.documents,
        records=len(collection.records),
        rejected=sum(1 for p in collection.problems if p.severity == "error") + len(refused),
        unpublished=collection.unpublished,
        duplicates=duplicates,
        items=len(stories),
        feeds=2 * len(plans) if write else 0,
        written=len(written),
        problems=collection.problems + tuple(refused),
        seconds=clock() - started,
        written_paths=tuple(written),
    )
