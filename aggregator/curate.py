"""Stage: from the records read, the stories (merge and cluster), their ranking and every
feed's items; and what a build would publish, worked out without writing anything.
"""

from __future__ import annotations

import sqlite3
from contextlib import ExitStack
from dataclasses import dataclass

from aggregator.cluster import Clustering, Stories, cluster_briefs
from aggregator.collect import Collection, ReadRecords, collect
from aggregator.config import Config
from aggregator.errors import StateUnavailable
from aggregator.filters import FeedRules
from aggregator.model import Record
from aggregator.parallel import WorkerPool, worker_count
from aggregator.progress import Progress
from aggregator.rank import (
    FeedPlan,
    Rankings,
    StoryKey,
    Topic,
    plan_ranked,
    rank_stories,
    story_key,
)
from aggregator.report import BuildReport
from aggregator.sources.files import FoundFiles
from aggregator.state import memory_store, open_read_only
from aggregator.state.fingerprint import parse_context, program_digest
from aggregator.state.parse_cache import ReadOnlyParseCache
from aggregator.state.stories import StoryTable


def story_table(curated: Curation, collection: Collection, found: FoundFiles) -> StoryTable | None:
    """What the next build needs to apply changed files to this one's stories (see
    aggregator.delta); None when a record does not come from a file found (held)."""
    read, keys, listed = collection.read, found.keys, found.count
    stories = curated.stories
    first = stories.first  # guid -> its first record
    # A link's files are its first record's file and, for the few links of several
    # records, the others': no dict or set for every link (at a million links those
    # were most of what this table added to a cold build's peak memory:
    # benchmarks/bench_scale.py, "cold").
    more: dict[str, set[str]] = {}
    for index, brief in enumerate(read.briefs):
        document = read.document(index)  # a record file's result is where the file is
        if document >= listed:
            return None
        at = first[brief.guid]
        if at != index:
            more.setdefault(brief.guid, {keys[read.document(at)]}).add(keys[document])
    table = StoryTable(filtered=len(collection.filtered))
    # The shown stories' keys come in the order their first stories come in time, as
    # clustering makes them; a dict by guid only where they do not (no clustering).
    leading = [brief.guid for brief, leader in stories.by_link if leader == brief.guid]
    in_order = len(leading) == len(curated.keys) and all(
        key.guid == guid for key, guid in zip(curated.keys, leading, strict=True))  # fmt: skip
    del leading
    by_guid = {} if in_order else {key.guid: key for key in curated.keys}
    next_key = iter(curated.keys).__next__
    for brief, leader in stories.by_link:
        time = brief.published.timestamp()
        table.times.append(time)
        table.guids.append(brief.guid)
        held = more.get(brief.guid)
        table.files.append((keys[read.document(first[brief.guid])],) if held is None
                           else tuple(sorted(held)))  # fmt: skip
        table.leaders.append(leader)
        key = None
        if leader == brief.guid:
            key = next_key() if in_order else by_guid.get(brief.guid)
        if key is None:
            for column in (table.scores, table.published, table.providers, table.topics,
                           table.failed):  # fmt: skip
                column.append(None)
        else:
            table.scores.append(key.score)
            table.published.append(None if key.published == time else key.published)
            table.providers.append(key.provider_key)
            table.topics.append(key.topics)
            table.failed.append(key.filtered_by)
    table.rankings = curated.rankings
    table.briefs_in_order = [brief for brief, _ in stories.by_link]  # the rows' order
    return table


@dataclass(frozen=True, slots=True)
class Curation:
    """What a build decides from the records it read: the stories and every feed."""

    stories: Stories
    plans: list[FeedPlan]
    topics: dict[str, Topic]
    rules: FeedRules
    keys: tuple[StoryKey, ...] = ()  # every story's, in the order of stories.briefs
    read: ReadRecords | None = None  # the records the stories are made of
    rankings: Rankings | None = None  # every feed's stories in rank order

    @property
    def names(self) -> dict[str, str]:
        return {key: topic.name for key, topic in self.topics.items()}

    @property
    def clustering(self) -> Clustering:
        """The stories as records, every one made now (`explain`; a build needs few)."""
        assert self.read is not None
        records = self.read.records()  # the very records Collection.records holds
        return self.stories.clustering(records.__getitem__)


def curate(config: Config, collection: Collection) -> Curation:
    """Merge copies into stories, then rank and choose each feed's items. Only the
    stories that merge records or that a feed shows are made as records."""
    read = collection.read
    stories = cluster_briefs(read.briefs, read.record, config.clustering)
    rules = FeedRules.of(config.filters)
    # A story of one record has the key made where the record was read.
    keys = tuple(read.keys[stories.first[brief.guid]] if brief.guid not in stories.merged
                 else story_key(stories.merged[brief.guid], config.ranking, rules)
                 for brief in stories.briefs)  # fmt: skip
    by_key = {key.guid: key for key in keys}
    rankings = rank_stories(by_key.values())
    key_plans, topics = plan_ranked(rankings, by_key.__getitem__, config.ranking,
                                    config.feeds.max_items, rules, config.feeds)  # fmt: skip
    shown = _Shown(stories, read)
    plans = [plan.with_stories(shown) for plan in key_plans]
    return Curation(stories, plans, topics, rules, keys, read, rankings)


class _Shown(dict[str, Record]):
    """The records of the stories the feeds show, each made when first asked for."""

    def __init__(self, stories: Stories, read: ReadRecords) -> None:
        super().__init__()
        self._stories = stories
        self._read = read

    def __missing__(self, guid: str) -> Record:
        record = self[guid] = self._stories.story(guid, self._read.record)
        return record



@dataclass(frozen=True, slots=True)
class SitePlan:
    """What a full build would publish, worked out without writing anything."""

    collection: Collection
    stories: int
    duplicates: int
    plans: list[FeedPlan]
    names: dict[str, str]  # topic key -> how the topic is shown

    def report(self, seconds: float = 0.0) -> BuildReport:
        """The counts of a build that wrote nothing."""
        problems = self.collection.problems
        return BuildReport(
            documents=self.collection.documents,
            records=len(self.collection.read),
            rejected=sum(1 for p in problems if p.severity == "error"),
            unpublished=self.collection.unpublished,
            duplicates=self.duplicates,
            items=self.stories,
            feeds=2 * len(self.plans),
            written=0,
            problems=problems,
            seconds=seconds,
            parsed=self.collection.parsed,
            fetch=self.collection.fetch,
        )


def plan_site(config: Config, progress: Progress | None = None) -> SitePlan:
    """Read every source and choose every feed's items, writing nothing, not even the
    state file (for `topics` and `build --dry-run`). Record files whose parse result the
    state file holds are not read again (the file is opened read-only and immutable:
    no journal, no lock). Remote sources use the stored fetch state when there is one
    (without updating it), else an empty one in memory."""
    with ExitStack() as stack:
        store = None
        shared = config.state.url is not None  # PostgreSQL: read the workers' records
        if (any(source.url for source in config.sources) and not shared
                and not config.build.state_path.exists()):  # fmt: skip
            store = stack.enter_context(memory_store())
        cache = None
        saved = open_read_only(config)
        if saved is not None:
            stack.enter_context(saved)
            store = saved if shared else store
            try:
                cache = ReadOnlyParseCache(saved, parse_context(config, program_digest(config)))
            except (sqlite3.Error, StateUnavailable):
                cache = None  # a build is changing it right now: read every file
        pool = stack.enter_context(WorkerPool(worker_count(config.build.workers)))
        collection = collect(config, cache, store=store, progress=progress, persist=False,
                             pool=pool)  # fmt: skip
    curated = curate(config, collection)
    stories = curated.stories
    return SitePlan(
        collection, len(stories.briefs), stories.duplicates, curated.plans, curated.names
    )
