"""Stage: carry out Redo.CHANGES, applying the files that changed since the last build to
the stories it made, and plan every feed again.

The last build left a StoryTable (aggregator.state.stories): every same-link story in
time order, with the files holding its records, its cluster's first story, and each
shown story's StoryKey (all that ranking needs). A change touches only:

- the same-link stories of the guids in the changed files, old and new;
- clustering, only where a story's clustering inputs (time, title, words, provider)
  changed, appeared or went: `assign_leaders` decides again from a window before the
  change until a window of stories past it has come out as before;
- the shown stories whose members changed.

Every feed is then chosen again from the StoryKeys, which reads no record. A feed whose
shape (rank.feed_shapes) is as the table remembers and none of whose stories changed is
taken with the inputs it was rendered from (rank.KnownFeed), its stories made only if
something reads them; only the stories a change touched and those of the other feeds
are built as records, from the parse cache. The output is byte-identical to a full
build's: tests/test_incremental.py plays random sequences of changes against full builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aggregator.cluster import (
    Brief,
    assign_leaders,
    brief_from_values,
    brief_of,
    clustering_inputs,
    link_record,
    story_record,
)
from aggregator.config import Config
from aggregator.errors import Problem
from aggregator.filters import FeedRules, Rule, first_match, source_rules
from aggregator.incremental import Decision
from aggregator.model import DocumentResult, Record
from aggregator.parallel import Loader, WorkerPool, parse_files
from aggregator.rank import (
    FeedPlan,
    KnownFeed,
    StoriesOnRead,
    StoryKey,
    Topic,
    feed_directory,
    feed_shapes,
    plan_ranked,
    rerank,
    story_key,
)
from aggregator.sources.files import FoundFiles, file_stamp
from aggregator.state.codec import Undecodable
from aggregator.state.parse_cache import ParseCache
from aggregator.state.record_codec import decode_record_values, decode_result
from aggregator.state.store import StateStore
from aggregator.state.stories import StoryTable

CHUNK = 256  # stories decoded at a time while clustering runs on past a change


@dataclass(frozen=True, slots=True)
class FileChange:
    """One changed file: what it gave at the last build and what it gives now."""

    key: str
    source: int  # index in config.sources
    old: DocumentResult | None  # None: new file (or not remembered)
    new: DocumentResult | None  # None: gone
    encoded: bytes | None = None  # the new result for the parse cache (None: not cached)
    stamp: bytes | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """What applying the changes gave: every feed, and what to remember."""

    plans: list[FeedPlan]
    topics: dict[str, Topic]
    stories: int
    records: int  # kept records in all (as Collection.records)
    unpublished: int
    filtered: int  # records the sources' filters left out
    problems: tuple[Problem, ...]  # of every record file, in the order found
    parsed: int
    source_counts: dict[str, int]  # records each `path` source gave, by its key prefix
    changes: tuple[FileChange, ...]


class Sources:
    """The records of this build's files as their sources' filters keep them: the changed
    files' as parsed, the others' read from the parse cache once each."""

    def __init__(self, config: Config, found: FoundFiles, store: StateStore) -> None:
        self.found = found
        self._store = store
        self._rules = source_rules(config.sources)
        self._kept: dict[str, list[Record]] = {}  # read from the parse cache
        self._changed: dict[str, list[Record]] = {}  # parsed by this build
        self._briefs: dict[str, list[Brief]] = {}  # read from the parse cache, briefly

    def source_of(self, key: str) -> int:
        return self.found.source_of(key)

    def _rules_of(self, source: int) -> tuple[Rule, ...]:
        return self._rules[source] if source >= 0 else ()

    def _stored(self, keys: list[str]) -> dict[str, bytes]:
        """These files' parse-cache entries; Undecodable if one is missing."""
        stored = ParseCache.stored(self._store, keys)
        for key in keys:
            if key not in stored:
                raise Undecodable(f"{key}: not in the parse cache")
        return stored

    def kept(self, result: DocumentResult, source: int) -> tuple[list[Record], int]:
        """The records a source's filters keep, and how many they left out."""
        rules = self._rules_of(source)
        if not rules:
            return list(result.records), 0
        kept = [record for record in result.records if first_match(rules, record) is None]
        return kept, len(result.records) - len(kept)

    def records(self, keys: Iterable[str]) -> dict[str, list[Record]]:
        """The kept records of these files (unchanged ones from the parse cache)."""
        keys = list(keys)
        kept, changed = self._kept, self._changed
        wanted = [key for key in keys if key not in kept and key not in changed]
        if wanted:
            stored = self._stored(wanted)
            for key in wanted:
                result = decode_result(stored[key], self.found.path_of(key))
                self._kept[key] = self.kept(result, self.source_of(key))[0]
        return {key: changed[key] if key in changed else kept[key] for key in keys}

    def briefs(self, keys: Iterable[str]) -> dict[str, list[Brief]]:
        """The Briefs of the kept records of these files (what clustering reads), from
        the parse cache's plain values where no record of the file was made and no
        filter of its source must read them (cluster.brief_from_values)."""
        keys = list(keys)
        made = self._briefs
        wanted, filtered = [], []
        for key in keys:
            if key in made:
                continue
            records = self._changed.get(key, self._kept.get(key))
            if records is not None:
                made[key] = [brief_of(record) for record in records]
            elif self._rules_of(self.source_of(key)):
                filtered.append(key)
            else:
                wanted.append(key)
        for key, records in self.records(filtered).items() if filtered else ():
            made[key] = [brief_of(record) for record in records]
        if wanted:
            stored = self._stored(wanted)
            for key in wanted:
                made[key] = [brief_from_values(values)
                             for values in decode_record_values(stored[key])]  # fmt: skip
        return {key: made[key] for key in keys}

    def remember(self, key: str, records: list[Record]) -> None:
        self._changed[key] = records
        self._briefs.pop(key, None)

    def release(self) -> None:
        """Let go of what was read from the parse cache (it can be read again): a
        change's window of stories, about 8 000 at a million records, is not needed for
        the next one."""
        self._kept.clear()
        self._briefs.clear()


def apply_changes(
    config: Config,
    table: StoryTable,
    store: StateStore,
    found: FoundFiles,
    decision: Decision,
    load: Loader,
    pool: WorkerPool,
    previous_problems: Sequence[Problem],
    previous_counts: dict[str, int],
    source_counts: dict[str, int],
) -> Delta:
    """Apply `decision`'s changed files to `table` (edited in place). Raises Undecodable
    when what the state holds does not fit (the caller then builds in full)."""
    sources = Sources(config, found, store)
    changes, parsed = _read_changes(sources, store, found, decision, load, pool)
    window = config.clustering.window_hours * 3600
    clustering = config.clustering.enabled
    changed_keys = {change.key for change in changes}

    # 1. Same-link stories of every guid the changed files held or hold.
    old_by_guid: dict[str, list[Record]] = {}
    new_by_guid: dict[str, list[Record]] = {}
    records = previous_counts["records"]
    unpublished = previous_counts["unpublished"]
    filtered = table.filtered
    counts = dict(source_counts)
    new_files: dict[str, list[str]] = {}  # guid -> changed files that hold it now
    for change in changes:
        span = found.span_of(change.key)
        prefix = None if span is None else span.prefix
        for result, sign, into in ((change.old, -1, old_by_guid), (change.new, 1, new_by_guid)):
            if result is None:
                continue
            kept, left_out = sources.kept(result, change.source)
            records += sign * len(kept)
            unpublished += sign * result.unpublished
            filtered += sign * left_out
            if prefix is not None:
                counts[prefix] = counts.get(prefix, 0) + sign * len(result.records)
            for record in kept:
                into.setdefault(record.guid, []).append(record)
        if change.new is not None:
            kept = sources.kept(change.new, change.source)[0]
            sources.remember(change.key, kept)
            for guid in dict.fromkeys(record.guid for record in kept):
                new_files.setdefault(guid, []).append(change.key)
    affected: set[str] = set()  # shown stories to make again (by guid)
    moved: list[float] = []  # times of stories whose clustering inputs changed or went
    fresh: set[str] = set()  # guids (re)inserted: clustering decides them again
    before: dict[str, StoryKey | None] = {}  # shown stories' keys, before any change
    # Decided from the table as the last build left it, then carried out at once: each
    # removal or insertion would otherwise renumber the table for the next guid.
    removals: list[int] = []
    insertions: list[tuple[float, str, tuple[str, ...], Record]] = []
    for guid in sorted(old_by_guid.keys() | new_by_guid.keys()):
        # Its place found by the times of its records (a new guid needs the index).
        times = [r.published.timestamp() for r in (*old_by_guid.get(guid, ()),
                                                   *new_by_guid.get(guid, ()))]  # fmt: skip
        position = table.locate(guid, times)
        if position is not None:
            before[guid] = table.key(guid)
        old_link = new_link = None
        files: list[str] = []
        if position is not None:
            kept_files = [key for key in table.files_of(position) if key not in changed_keys]
            unchanged = [r for key, found_records in sources.records(kept_files).items()
                         for r in found_records if r.guid == guid]  # fmt: skip
            old_link = link_record([*unchanged, *old_by_guid.get(guid, [])])
            new_records = [*unchanged, *new_by_guid.get(guid, [])]
            files = kept_files
        else:
            new_records = new_by_guid.get(guid, [])
        files.extend(new_files.get(guid, ()))
        if new_records:
            new_link = link_record(new_records)
        if position is not None:
            affected.add(table.guids[table.leader_position(position)])
        if new_link is None:
            assert position is not None and old_link is not None
            moved.append(table.times[position])
            removals.append(position)
            continue
        time = new_link.published.timestamp()
        if old_link is not None and position is not None and (
            clustering_inputs(old_link) == clustering_inputs(new_link)
        ):
            table.set_files(position, tuple(sorted(set(files))))
            affected.add(table.leaders[position])
            continue
        if position is not None:
            moved.append(table.times[position])
            removals.append(position)
        insertions.append((time, guid, tuple(sorted(set(files))), new_link))
        fresh.add(guid)
        affected.add(guid)
    for position in sorted(removals, reverse=True):
        table.remove(position)
    for time, guid, held, link in insertions:
        table.insert(time, guid, held, guid, brief_of(link))

    # 2. Clustering, again where its inputs changed.
    links: dict[str, Record] = {}

    def prefetch(positions: Iterable[int]) -> None:
        """Read the files of these stories from the parse cache in a few queries."""
        sources.records({key for p in positions if table.guids[p] not in links
                         for key in table.files_of(p)})  # fmt: skip

    def link_of(position: int) -> Record:
        guid = table.guids[position]
        found_link = links.get(guid)
        if found_link is None:
            by_file = sources.records(table.files_of(position))
            found_link = links[guid] = link_record(
                [r for key in table.files_of(position) for r in by_file[key] if r.guid == guid]
            )
        return found_link

    briefs: dict[str, Brief] = {}

    def prefetch_briefs(positions: Iterable[int]) -> None:
        """The briefs of these stories: kept in the story table by day, else read
        from the parse cache in a few queries."""
        missing = []
        for p in positions:
            guid = table.guids[p]
            if guid not in briefs:
                kept = table.brief_at(p)
                if kept is None:
                    missing.append(p)
                else:
                    briefs[guid] = kept
        if missing:
            sources.briefs({key for p in missing for key in table.files_of(p)})

    def brief_at(position: int) -> Brief:
        """What clustering reads of the story at `position`: as the story table keeps
        it, else one record's brief as the parse cache holds it, else (a link of
        several records) its merged record's."""
        guid = table.guids[position]
        found_brief = briefs.get(guid) or table.brief_at(position)
        if found_brief is None:
            by_file = sources.briefs(table.files_of(position))
            mine = [b for key in table.files_of(position) for b in by_file[key] if b.guid == guid]
            found_brief = briefs[guid] = mine[0] if len(mine) == 1 else brief_of(
                link_of(position))  # fmt: skip
        return found_brief

    if clustering:
        def release() -> None:
            links.clear()
            briefs.clear()
            sources.release()

        _recluster(table, config, fresh, moved, window, brief_at, prefetch_briefs, affected,
                   release)  # fmt: skip

    # 3. The shown stories whose members changed.
    rules = FeedRules.of(config.filters)
    shown = {}
    for guid in sorted(affected):
        if guid not in before:
            before[guid] = table.key(guid)
        position = table.position(guid)
        if position is None or table.leaders[position] != guid:
            table.set_key(guid, None)
        else:
            shown[guid] = _members(table, position, window)
    prefetch(p for members in shown.values() for p in members)
    for guid, members in shown.items():
        story = story_record([link_of(p) for p in members])
        table.set_key(guid, story_key(story, config.ranking, rules))

    # 4. Every feed, from the rankings moved by what changed; only the chosen stories
    # are made.
    if table.rankings is None:
        raise Undecodable("a story table without its rankings")
    made: dict[str, StoryKey] = {}  # a story is read by the all-topics feed and its topics'

    def key_of(guid: str) -> StoryKey:
        key = made.get(guid)
        if key is None:
            key = made[guid] = table.key_of(guid)
        return key

    touched = rerank(table.rankings, [(old, table.key(guid))
                                      for guid, old in sorted(before.items())], key_of)  # fmt: skip

    def earlier(topic: Topic | None) -> tuple[tuple[str, ...], int] | None:
        """A feed's last choice, where none of its stories moved (the settings are as
        they were: this path is taken only then)."""
        key = None if topic is None else topic.key
        remembered = None if key in touched else table.feeds.get(feed_directory(topic))
        if remembered is None or remembered[5] != (key or ""):
            return None
        return remembered[6], remembered[7]

    key_plans, topics = plan_ranked(table.rankings, key_of, config.ranking,
                                    config.feeds.max_items, rules, config.feeds,
                                    earlier)  # fmt: skip
    # A feed whose shape is as the last build rendered it and none of whose stories
    # changed renders as it did: its stories are made only if something reads them
    # (a file of it changed by hand, say). The others' are made now, in one batch.
    stories: dict[str, Record] = {}

    def make(guids: Sequence[str]) -> tuple[Record, ...]:
        """These chosen stories, made from the parse cache in a few queries."""
        members = {guid: _members(table, positions[guid], window)
                   for guid in dict.fromkeys(guids) if guid not in stories}  # fmt: skip
        prefetch(p for found_members in members.values() for p in found_members)
        for guid, found_members in members.items():
            stories[guid] = story_record([link_of(p) for p in found_members])
        return tuple(stories[guid] for guid in guids)

    positions: dict[str, int] = {}
    for guid in {guid for plan in key_plans for guid in plan.guids}:
        position = table.position(guid)
        if position is None:
            raise Undecodable(f"{guid}: a story without its record")
        positions[guid] = position
    shapes = feed_shapes(key_plans, {key: topic.name for key, topic in topics.items()})
    known: dict[str, KnownFeed] = {}
    for plan in key_plans:
        remembered = table.feeds.get(plan.directory)
        if remembered is not None and remembered[0] == shapes[plan.directory] and (
            affected.isdisjoint(plan.guids)
        ):
            known[plan.directory] = KnownFeed(*remembered[1:5])
    make([guid for plan in key_plans if plan.directory not in known for guid in plan.guids])
    plans = [
        plan.with_stories(stories) if plan.directory not in known
        else FeedPlan(plan.topic, StoriesOnRead(plan.guids, make), plan.total,
                      known[plan.directory])
        for plan in key_plans
    ]  # fmt: skip
    table.filtered = filtered
    problems = _problems(found, previous_problems, changes)
    return Delta(plans, topics, table.shown, records, unpublished, filtered, problems,
                 parsed, counts, tuple(changes))  # fmt: skip


def _read_changes(
    sources: Sources,
    store: StateStore,
    found: FoundFiles,
    decision: Decision,
    load: Loader,
    pool: WorkerPool,
) -> tuple[list[FileChange], int]:
    """Each changed file's last result (from the parse cache) and new one (parsed)."""
    gone = [*decision.edited, *decision.deleted, *(old for old, _ in decision.renamed)]
    come = [*decision.added, *decision.edited, *(new for _, new in decision.renamed)]
    stored = ParseCache.stored(store, gone)
    old = {key: decode_result(stored[key], "") if key in stored else None for key in gone}
    paths = [found.path_of(key) for key in come]
    parsed = parse_files(load, paths, pool)
    now = decision.stamp_now()
    changes: dict[str, FileChange] = {}
    for key in gone:
        changes[key] = FileChange(key, sources.source_of(key), old[key], None)
    for key, path, (encoded, may_cache) in zip(come, paths, parsed, strict=True):
        previous = changes.get(key)
        changes[key] = FileChange(key, found.source_of(key),
                                  None if previous is None else previous.old,
                                  decode_result(encoded, path),
                                  encoded if may_cache else None,
                                  None if key not in now else file_stamp(*now[key]))  # fmt: skip
    return list(changes.values()), len(come)


def _recluster(
    table: StoryTable,
    config: Config,
    fresh: set[str],
    moved: list[float],
    window: float,
    brief_at: Callable[[int], Brief],
    prefetch: Callable[[Iterable[int]], None],
    affected: set[str],
    release: Callable[[], None],
) -> None:
    """Decide clustering again around every change, one region of nearby changes at a
    time, each from a window before its first change until it settles; `release` lets
    go of the stories read for a region."""
    events: list[tuple[float, str]] = [(time, "") for time in moved]  # "": a story gone
    for guid in fresh:
        position = table.position(guid)
        assert position is not None
        events.append((table.times[position], guid))
    events.sort()
    regions: list[list[tuple[float, str]]] = []
    for event in events:
        if regions and event[0] - regions[-1][-1][0] <= 2 * window:
            regions[-1].append(event)
        else:
            regions.append([event])
    for region in regions:
        _settle(table, config, fresh, region, window, brief_at, prefetch, affected)
        release()  # each region reads its own stories


def _settle(
    table: StoryTable,
    config: Config,
    fresh: set[str],
    region: list[tuple[float, str]],
    window: float,
    brief_at: Callable[[int], Brief],
    prefetch: Callable[[Iterable[int]], None],
    affected: set[str],
) -> None:
    """Clustering decided again for one region of changes (see `assign_leaders`), from
    the stories' briefs."""
    first = region[0][0]
    start = table.slot(first - window, "")  # the stories a change's window reaches
    low = start  # and back to their leaders, whose times clustering reads
    for position in range(start, table.slot(first, "")):
        leader = table.position(table.leaders[position])
        if leader is not None:
            low = min(low, leader)
    changed = [p for p in (table.position(g) for _, g in region if g) if p is not None]
    gone_at = max((time for time, guid in region if not guid), default=float("-inf"))
    begin = min([*changed, table.slot(first, "")])
    last = max([*changed, table.slot(gone_at, "") - 1, begin])
    ordered: list[Brief] = []
    leaders: list[int] = []

    def extend(upto: int) -> bool:
        upto = min(upto, len(table.guids))
        if low + len(ordered) >= upto:
            return False
        prefetch(range(low + len(ordered), upto))
        for position in range(low + len(ordered), upto):
            ordered.append(brief_at(position))
            if position >= begin and table.guids[position] in fresh:
                leaders.append(-1)
                continue
            leader = table.position(table.leaders[position])
            leaders.append(-1 if leader is None or leader < low else leader - low)
        return True

    extend(last + 1)
    stop = assign_leaders(ordered, config.clustering, leaders, start=begin - low,
                          last_changed=last - low, changed_at=gone_at,
                          more=lambda: extend(low + len(ordered) + CHUNK))  # fmt: skip
    for index in range(begin - low, stop):
        position = low + index
        leader = table.guids[low + leaders[index]]
        before = table.leaders[position]
        if before != leader or table.guids[position] in fresh:
            affected.update((before, leader))
            table.set_leader(position, leader)


def _members(table: StoryTable, leader: int, window: float) -> list[int]:
    """The positions of the cluster that begins at `leader`: all lie within the window
    after it (a story joins only a cluster whose first story is that close)."""
    guid, start = table.guids[leader], table.times[leader]
    if guid not in table.clusters():
        return [leader]  # most stories are alone: no window to walk
    members = [leader]
    position = leader + 1
    while position < len(table.guids) and table.times[position] - start <= window:
        if table.leaders[position] == guid:
            members.append(position)
        position += 1
    return members


def _problems(
    found: FoundFiles,
    previous: Sequence[Problem],
    changes: Sequence[FileChange],
) -> tuple[Problem, ...]:
    """Every record file's problems in the order the files were found, as a full build
    lists them: the last build's for unchanged files, the new ones for changed files."""
    new = {found.path_of(c.key): c.new.problems for c in changes if c.new is not None}
    stale = {found.path_of(c.key) for c in changes}
    if not previous and not any(new.values()):
        return ()
    by_origin: dict[str, list[Problem]] = {}
    for problem in previous:
        if problem.origin not in stale:
            by_origin.setdefault(problem.origin, []).append(problem)
    for origin, problems in new.items():
        if problems:
            by_origin[origin] = list(problems)
    ordered: list[Problem] = []
    for origin in sorted(by_origin, key=found.order_of_path):
        ordered.extend(by_origin[origin])
    return tuple(ordered)
