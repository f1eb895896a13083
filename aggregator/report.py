"""What a build reports: its counts, its problems and the files it changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.errors import Problem
from aggregator.sources.results import FetchStats
from aggregator.wording import plural

if TYPE_CHECKING:
    from aggregator.output.changes import Uploads


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
    removed_paths: tuple[Path, ...] = ()  # files of topics that are gone, deleted
    # What changed where the site is published (relative paths): the files written and
    # removed, or with [site] output_url the objects put and deleted (output/changes.py).
    changed_paths: tuple[str, ...] = ()
    uploads: Uploads | None = None  # what object storage was given, with output_url
    parsed: int = 0  # files read and parsed; the rest came from the parse cache
    rendered: int = 0  # output files rendered; the rest were current already
    fetch: FetchStats = field(default_factory=FetchStats)
    filtered: int = 0  # records a source's filters left out, and files its globs exclude
    redo: str = "full"  # what the build redid: "nothing", "changes" or "full" (incremental.Redo)

    def summary(self) -> str:
        remote = f"; {self.fetch.summary()}" if self.fetch.sources else ""
        return (
            f"{plural(self.records, 'record')} from {plural(self.documents, 'file')} "
            f"({self.parsed} parsed): {self.rejected} rejected, "
            f"{self.unpublished} unpublished, {self.filtered} filtered, "
            f"{plural(self.duplicates, 'duplicate')} merged; "
            f"{plural(self.items, 'story', 'stories')} in {plural(self.feeds // 2, 'feed')}; "
            f"rendered {self.rendered} and wrote {self.written} of "
            f"{plural(self.files, 'file')} in {self.seconds:.2f} s{remote}"
        )
