"""The story table ("stories" namespace): every same-link story of the last build, in
time order, and every feed's stories in rank order, so that the next build can apply a
few changed files without reading the others (aggregator.delta).

Per same-link story: its time (what clustering orders by), guid, the parse-cache keys
of the files holding its records, and its cluster's first story (the story it is shown
as); per shown story, the parts of its StoryKey (what ranking needs). Stored column by
column, one value per UTC day of publication, so that a build that changes a few
stories rewrites a few days and loading is a few list extensions per day. The
Rankings (aggregator.rank) are stored beside it in one value, as places in the
table rather than guids (4 bytes a story instead of a link). The table is remembered
together with the snapshot and is valid only with it: a full build rewrites it, and
forgets it first, so a build killed half-way leaves none to be misled by.

The files of each day's stories are kept apart ("story_files" namespace, one deflated
value per day) and read only for a day whose stories a build reads or changes: most builds
need a few days' of them, and at a million stories they were a third of what loading
the table unmarshalled (benchmarks/bench_scale.py, "10 heat edits").

Beside it ("briefs" namespace, one deflated value per day, read only for the days an
incremental build clusters again): what clustering reads of each story (its title,
content words and provider; cluster.Brief), so that the stories around a change are
not decoded from the parse cache one by one (benchmarks/bench_build.py, "+10 files").
A day without it (a state written before it) is read from the parse cache instead.
"""

from __future__ import annotations

import marshal
import sys
import weakref
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import filterfalse
from typing import TYPE_CHECKING, Any

from aggregator.state.codec import Undecodable, pack, unpack
from aggregator.state.store import StateStore

if TYPE_CHECKING:
    from aggregator.cluster import Brief
    from aggregator.rank import Rankings, StoryKey

STORIES = "stories"
STORY_FILES = "story_files"  # per day, deflated: the parse-cache keys of each story's files
BRIEFS = "briefs"  # per day: each story's (title, words, provider key, published or None)
BriefRow = tuple[str, str, str, "str | None"]
META = "meta"
RANKED = "rank"  # the rankings: every feed's order, and the spellings
FEEDS = "feeds"  # what each feed was rendered from (see `StoryTable.feeds`)
RememberedFeed = tuple[bytes, bytes, bytes, str, int, str, tuple[str, ...], int]
TABLE_LAYOUT = 3  # of the values below; another one reads as no table
DAY = 86_400
_COLUMNS = 8  # stored per day in STORIES: every column but the files
_SHARED = 5  # the stored columns from providers on hold values shared by many stories
_FEW = 1_000  # guids looked up one by one rather than by the index of every guid


def _shared_in_day(values: list[object]) -> list[object]:
    """A day's values of a column whose values repeat from story to story (providers,
    topics, failed rules): one object per value, its strings interned. marshal writes
    a value met again in the same day as a reference to the first, and reads interned
    strings back as the one object every day shares, in C: a load that shared them
    itself took a step per story (benchmarks/bench_scale.py, "10 heat edits")."""
    one: dict[object, object] = {}
    return [one[value] if value in one else one.setdefault(value, _interned(value))
            for value in values]  # fmt: skip


def _interned(value: object) -> object:
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, tuple):
        return tuple(sys.intern(part) if isinstance(part, str) else part for part in value)
    return value


def _rankings(table: StoryTable, order: bytes, topics: dict[str, bytes],
              spellings: dict[str, int]) -> Rankings:  # fmt: skip
    """The Rankings that `StoryTable._ranked_values` stored, read as places in `table`."""
    from aggregator.rank import Rankings  # not imported by a build that needs no table

    if not isinstance(order, bytes) or not all(isinstance(v, bytes) for v in topics.values()):
        raise TypeError("rankings of another layout")
    by_topic: dict[str, MutableSequence[str]] = {}
    stories = len(table.guids)
    for topic, stored in (("", order), *topics.items()):
        places = array("I", stored)
        if places and max(places) >= stories:  # a damaged value: no table (IndexError)
            raise IndexError(f"rankings: a place past the table's {stories} stories")
        by_topic[topic] = PlacedGuids(places, table)
    return Rankings(by_topic.pop(""), by_topic, dict(spellings))


def _outwards(guids: list[str], guid: str, start: int) -> int | None:
    """Where `guid` is in `guids`, looked for in growing stretches on both sides of
    `start` (list.index runs in C); None if it is not there."""
    low = high = min(max(start, 0), len(guids))
    stretch = 1_024
    while low > 0 or high < len(guids):
        below, above = max(0, low - stretch), min(len(guids), high + stretch)
        for begin, end in ((below, low), (high, above)):
            if begin < end:
                try:
                    return guids.index(guid, begin, end)
                except ValueError:
                    pass
        low, high, stretch = below, above, stretch * 4
    return None


class PlacedGuids(MutableSequence[str]):
    """A rank order as the table stores it, places in the table, read as guids: reading
    a feed's first stories or moving a few costs a few steps, where turning a million
    places into guids would cost most of a rebuild's second (benchmarks/bench_scale.py,
    "10 heat edits"). Valid while no story comes or goes: the table turns its rank
    orders into guid lists before its first insertion or removal.

    It holds its table weakly: the table holds its rank orders, and a cycle between
    them would leave a million objects to Python's cycle collector, which a build
    pauses (aggregator.pipeline); freed by reference counting instead, they go as the
    build returns, without a collection scanning them all (benchmarks/bench_build.py,
    "10 heat edits")."""

    __slots__ = ("_table", "places")

    def __init__(self, places: array[int], table: StoryTable) -> None:
        self.places = places
        self._table = table if isinstance(table, weakref.ProxyType) else weakref.proxy(table)

    def __len__(self) -> int:
        return len(self.places)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        guids = self._table.guids
        if isinstance(index, slice):
            return [guids[place] for place in self.places[index]]
        place = self.places[index]
        guid = guids[place]
        self._table.seen(guid, place)  # what is read is looked up next: no index needed
        return guid

    def __iter__(self) -> Iterator[str]:
        return map(self._table.guids.__getitem__, self.places)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __setitem__(self, index, guid):  # type: ignore[no-untyped-def, override]
        self.places[index] = self._table.place_of(guid)

    def __delitem__(self, index):  # type: ignore[no-untyped-def, override]
        del self.places[index]

    def insert(self, index: int, guid: str) -> None:
        self.places.insert(index, self._table.place_of(guid))

    def without(self, gone: set[str]) -> PlacedGuids:
        """A copy without these guids (filterfalse over the places, in C)."""
        out = {place for place in map(self._table.position, gone) if place is not None}
        return PlacedGuids(array("I", filterfalse(out.__contains__, self.places)), self._table)

    def __repr__(self) -> str:
        return f"PlacedGuids({list(self)!r})"


@dataclass(slots=True, weakref_slot=True)
class StoryTable:
    """One build's working copy of the table (mutable: a build edits it in place)."""

    times: list[float] = field(default_factory=list)
    guids: list[str] = field(default_factory=list)
    # Read per day when first needed (`files_of`): None for a story whose day's files
    # are not read yet. A full build's table holds every story's.
    files: list[tuple[str, ...] | None] = field(default_factory=list)
    leaders: list[str] = field(default_factory=list)  # guid of the cluster's first story
    # The StoryKey of each shown story, part by part (None where a story is not shown).
    scores: list[float | None] = field(default_factory=list)
    published: list[float | None] = field(default_factory=list)  # None: its time
    providers: list[str | None] = field(default_factory=list)
    topics: list[tuple[str, ...] | None] = field(default_factory=list)
    failed: list[tuple[int, ...] | None] = field(default_factory=list)  # FeedRules indices
    rankings: Rankings | None = None
    filtered: int = 0  # records the sources' filters left out
    # Per feed directory, as the last build rendered it: (shape, inputs, page inputs,
    # newest item's date, archive pages; see aggregator.rank.KnownFeed and feed_shapes)
    # and what it chose (its topic's key, "" for all topics; the chosen guids; the
    # stories it chose from), which a build whose changes leave its stories as they
    # were takes again instead of choosing (rank.plan_ranked).
    feeds: dict[str, RememberedFeed] = field(default_factory=dict)
    _feeds_stored: dict[str, RememberedFeed] | None = None
    dirty: set[int] = field(default_factory=set)  # days to write again
    # Each story's brief (BRIEFS): read per day as first needed from `_store`; a day
    # is None where the store has none that fits; written again for `_briefs_dirty`.
    # A full build gives every story's, in table order, as `briefs_in_order`.
    briefs_in_order: Sequence[Brief] | None = None
    _store: StateStore | None = None
    _briefs: dict[int, list[BriefRow] | None] = field(default_factory=dict)
    _briefs_dirty: set[int] = field(default_factory=set)
    _files_read: set[int] | None = None  # days whose files are read (None: every day's)
    _files_dirty: set[int] = field(default_factory=set)
    _positions: dict[str, int] | None = None  # every guid's place, made when first needed
    _seen: dict[str, int] = field(default_factory=dict)  # places already found, by guid
    _clusters: set[str] | None = None

    def clusters(self) -> set[str]:
        """The guids that lead a cluster of more than one story."""
        if self._clusters is None:
            self._clusters = {leader for leader, guid in zip(self.leaders, self.guids,
                                                             strict=True) if leader != guid}
        return self._clusters

    @property
    def shown(self) -> int:
        """How many stories are shown (have a key)."""
        return len(self.scores) - self.scores.count(None)

    # --- finding and editing ----------------------------------------------------------
    def position(self, guid: str) -> int | None:
        """Where the story of this guid is (None: not in the table). A story found by
        its time, by its cluster or read from a rank order is looked up at once; any
        other needs the index of every guid, made once (about 0.5 s at a million)."""
        if self._positions is None:
            found = self._seen.get(guid)
            if found is not None:
                return found
        return self._index().get(guid)

    def _index(self) -> dict[str, int]:
        if self._positions is None:
            self._positions = dict(zip(self.guids, range(len(self.guids)), strict=True))
        return self._positions

    def place_of(self, guid: str) -> int:
        position = self.position(guid)
        if position is None:
            raise KeyError(guid)
        return position

    def seen(self, guid: str, position: int) -> None:
        """Note where a guid was found, for `position`."""
        if self._positions is None:
            self._seen[guid] = position

    def locate(self, guid: str, times: Iterable[float]) -> int | None:
        """`position`, trying first where a story of each of these times would be (times
        of records of its link), then outwards from there: the link's time may be that
        of a record in another file. A search of every story in C costs a few
        milliseconds at a million stories, the index of every guid half a second."""
        if self._positions is not None or guid in self._seen:
            return self.position(guid)
        guids, starts = self.guids, []
        for time in times:
            at = self.slot(time, guid)
            if at < len(guids) and guids[at] == guid:
                self._seen[guid] = at
                return at
            starts.append(at)
        found = _outwards(guids, guid, starts[0] if starts else 0)
        if found is not None:
            self._seen[guid] = found
        return found

    def leader_position(self, position: int) -> int:
        """Where the first story of this story's cluster is: shortly before it in time
        order, so looked for outwards from it (`_outwards`)."""
        leader = self.leaders[position]
        if leader == self.guids[position]:
            return position
        found = self._seen.get(leader) if self._positions is None else self._positions[leader]
        if found is None:
            found = _outwards(self.guids, leader, position)
            if found is None:
                raise KeyError(leader)
            self.seen(leader, found)
        return found

    def key(self, guid: str) -> StoryKey | None:
        """The StoryKey of a shown story (None: not shown, or not in the table)."""
        position = self.position(guid)
        if position is None or self.scores[position] is None:
            return None
        return self._key_at(position)

    def key_of(self, guid: str) -> StoryKey:
        """The StoryKey of a story known to be shown."""
        position = self.position(guid)
        if position is None or self.scores[position] is None:
            raise KeyError(guid)
        return self._key_at(position)

    def _key_at(self, position: int) -> StoryKey:
        from aggregator.rank import StoryKey

        published = self.published[position]
        return StoryKey(self.scores[position], self.times[position] if published is None  # type: ignore[arg-type]
                        else published, self.guids[position], self.providers[position],  # type: ignore[arg-type]
                        self.topics[position], self.failed[position])  # type: ignore[arg-type]  # fmt: skip

    def slot(self, time: float, guid: str) -> int:
        """Where a story of this time and guid goes in the time order."""
        position = bisect_left(self.times, time)
        while position < len(self.times) and self.times[position] == time and (
            self.guids[position] < guid
        ):
            position += 1
        return position

    def _columns(self) -> tuple[list, ...]:  # type: ignore[type-arg]
        return (self.times, self.guids, self.files, self.leaders, self.scores, self.published,
                self.providers, self.topics, self.failed)  # fmt: skip

    def _stored_columns(self) -> tuple[list, ...]:  # type: ignore[type-arg]
        """The columns a day's STORIES value holds (the files are stored apart)."""
        return (self.times, self.guids, self.leaders, self.scores, self.published,
                self.providers, self.topics, self.failed)  # fmt: skip

    # --- the files of each story -------------------------------------------------------
    def files_of(self, position: int) -> tuple[str, ...]:
        """The parse-cache keys of the files holding the records of the story here;
        Undecodable if the store does not hold its day's."""
        found = self.files[position]
        if found is None:
            self._read_files(int(self.times[position] // DAY))
            found = self.files[position]
            if found is None:
                raise Undecodable(f"{self.guids[position]}: no files stored")
        return found

    def set_files(self, position: int, files: tuple[str, ...]) -> None:
        """Another list of files for a story (its day's other columns are as they were)."""
        day = int(self.times[position] // DAY)
        self._read_files(day)
        self.files[position] = files
        self._files_dirty.add(day)

    def _read_files(self, day: int) -> None:
        """A day's files from the store, once (before any of its stories change)."""
        if self._files_read is None or day in self._files_read:
            return
        self._files_read.add(day)
        low, high = self._span(day)
        rows = self._stored_day(STORY_FILES, day, None)
        if rows is None and high > low:
            raise Undecodable(f"day {day}: no files stored")
        self.files[low:high] = rows or []

    def _span(self, day: int, low: int = 0) -> tuple[int, int]:
        """Where the stories of a day begin and end in the table (looked for from `low`)."""
        low = bisect_left(self.times, day * DAY, low)
        return low, bisect_left(self.times, (day + 1) * DAY, low)

    def _stored_day(self, namespace: str, day: int, width: int | None) -> list[Any] | None:
        """The rows a namespace beside the table holds for a day (None: none stored);
        Undecodable when damaged or of another count of stories than the table's."""
        data = None if self._store is None else self._store.get(namespace, str(day))
        if data is None:
            return None
        rows = _inflated(data, width)
        low, high = self._span(day)
        if len(rows) != high - low:
            raise Undecodable(f"day {day}: {namespace} of other stories")
        return rows

    def _reshaping(self) -> None:
        """Before a story comes or goes, every place after it moves: what is held as
        places becomes guids first, and the places found are forgotten."""
        rankings = self.rankings
        if rankings is not None:
            if isinstance(rankings.order, PlacedGuids):
                rankings.order = list(rankings.order)
            for topic, listed in rankings.by_topic.items():
                if isinstance(listed, PlacedGuids):
                    rankings.by_topic[topic] = list(listed)
        self._positions = None
        self._seen.clear()
        self._clusters = None

    def insert(self, time: float, guid: str, files: tuple[str, ...], leader: str,
               brief: Brief | None = None) -> int:  # fmt: skip
        self._reshaping()
        position = self.slot(time, guid)
        self._read_files(int(time // DAY))
        self._files_dirty.add(int(time // DAY))
        self._brief_put(int(time // DAY), position, brief)
        for column, value in zip(self._columns(), (time, guid, files, leader),
                                 strict=False):  # fmt: skip
            column.insert(position, value)
        for column in self._columns()[4:]:
            column.insert(position, None)
        self.dirty.add(int(time // DAY))
        return position

    def remove(self, position: int) -> None:
        self._reshaping()
        day = int(self.times[position] // DAY)
        self.dirty.add(day)
        self._read_files(day)
        self._files_dirty.add(day)
        rows = self._day_briefs(day)
        if rows is not None:
            del rows[position - self._span(day)[0]]
        self._briefs_dirty.add(day)
        for column in self._columns():
            del column[position]

    # --- what clustering reads of each story ------------------------------------------
    def brief_at(self, position: int) -> Brief | None:
        """The brief of the story at `position` (None: its day's are not stored)."""
        day = int(self.times[position] // DAY)
        rows = self._day_briefs(day)
        if rows is None:
            return None
        from aggregator.cluster import Brief

        title, words, provider, published = rows[position - self._span(day)[0]]
        moment = (datetime.fromtimestamp(self.times[position], UTC) if published is None
                  else datetime.fromisoformat(published))  # fmt: skip
        return Brief(self.guids[position], moment, title, words, provider)

    def _day_briefs(self, day: int) -> list[BriefRow] | None:
        """The briefs of a day's stories in table order, read once (before the day's
        stories change: a stored day must have as many as the table)."""
        if day not in self._briefs:
            try:
                self._briefs[day] = self._stored_day(BRIEFS, day, 4)
            except Undecodable:
                self._briefs[day] = None  # read from the parse cache instead
        return self._briefs[day]

    def _brief_put(self, day: int, position: int, brief: Brief | None) -> None:
        """A story's brief into its day's, where it goes at `position` (before it does)."""
        rows = self._day_briefs(day)
        if rows is not None and brief is not None:
            rows.insert(position - self._span(day)[0], _brief_row(brief))
        else:
            self._briefs[day] = None  # not known for every story of the day: not stored
        self._briefs_dirty.add(day)

    def set_leader(self, position: int, leader: str) -> None:
        if self.leaders[position] != leader:
            self.leaders[position] = leader
            self.dirty.add(int(self.times[position] // DAY))
            self._clusters = None

    def set_key(self, guid: str, key: StoryKey | None) -> None:
        position = self.position(guid)
        if position is None:
            return  # gone: its key went with it
        values = (None,) * 5 if key is None else (
            key.score, None if key.published == self.times[position] else key.published,
            key.provider_key, key.topics, key.filtered_by)  # fmt: skip
        for column, value in zip(self._columns()[4:], values, strict=True):
            if column[position] != value:
                column[position] = value
                self.dirty.add(int(self.times[position] // DAY))

    # --- the store ------------------------------------------------------------------
    @classmethod
    def load(cls, store: StateStore) -> StoryTable | None:
        """The table the last build left, or None if there is none or it is damaged."""
        stored = store.items(STORIES)
        meta = stored.pop(META, None)
        ranked = stored.pop(RANKED, None)
        feeds = stored.pop(FEEDS, None)
        if meta is None or ranked is None:
            return None
        table = cls(_store=store, _files_read=set())
        try:
            layout, table.filtered = unpack(meta)
            if layout != TABLE_LAYOUT:
                return None
            columns = table._stored_columns()
            # Providers, topics and failed rules come back shared as `_by_day` wrote
            # them: one object per value in a day, one string in every day.
            for day in sorted(stored, key=int):
                values = unpack(stored.pop(day))  # let go of each day's bytes once read
                if len(values) != _COLUMNS or len({len(v) for v in values}) != 1:
                    return None
                for column, value in zip(columns, values, strict=True):
                    column.extend(value)
            table.files = [None] * len(table.times)  # read by day, when needed
            # Stored as "": the story leads itself (most do).
            table.leaders = [leader or guid for leader, guid in zip(table.leaders, table.guids,
                                                                     strict=True)]  # fmt: skip
            order, topics, spellings = unpack(ranked)
            table.rankings = _rankings(table, order, topics, spellings)
            if feeds is not None:  # none: every feed is rendered from its stories
                known = unpack(feeds)
                if all(isinstance(v, tuple) and len(v) == 8 for v in known.values()):
                    table.feeds = known
                    table._feeds_stored = dict(known)
        except (Undecodable, ValueError, TypeError, IndexError, AttributeError):
            return None
        return table

    def save(self, store: StateStore, *, everything: bool = False) -> None:
        """Write the days that changed (every day with `everything`), the rankings and
        the counts."""
        rankings = self.rankings
        with store.transaction():
            if everything:
                for day in self._days():
                    self._read_files(day)  # (a table loaded, then saved whole)
                store.delete_many(STORIES, list(store.keys(STORIES)))
                store.delete_many(BRIEFS, list(store.keys(BRIEFS)))
                store.delete_many(STORY_FILES, list(store.keys(STORY_FILES)))
            self._save_briefs(store, everything)
            self._save_files(store, everything)
            emptied: list[int] = []
            # Each day packed as the store takes it: a full build's table, packed at
            # once, would hold a quarter of a GB more at a million stories, at the
            # build's peak (benchmarks/bench_scale.py, "cold").
            days = self._by_day(None if everything else self.dirty, emptied)
            store.put_many(STORIES, ((str(day), pack(rows)) for day, rows in days))
            store.delete_many(STORIES, [str(day) for day in emptied])
            if rankings is not None:
                store.put(STORIES, RANKED, pack(self._ranked_values(rankings)))
            if everything or self.feeds != self._feeds_stored:
                store.put(STORIES, FEEDS, pack(self.feeds))
                self._feeds_stored = dict(self.feeds)
            store.put(STORIES, META, pack((TABLE_LAYOUT, self.filtered)))
        self.dirty = set()

    def _save_files(self, store: StateStore, everything: bool) -> None:
        """The files of every day (`everything`), else of the days whose stories came,
        went or changed files."""
        days = self._days() if everything else sorted(self._files_dirty)
        _put_days(store, STORY_FILES, self._day_rows(days, self.files))
        self._files_dirty = set()

    def _day_rows(self, days: Iterable[int], rows: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Each of these days (in order) with its stories' slice of `rows` (a column in
        table order), one day at a time."""
        low = 0
        for day in days:
            low, high = self._span(day, low)
            yield day, rows[low:high]
            low = high

    def _by_day(
        self, wanted: set[int] | None, emptied: list[int]
    ) -> Iterator[tuple[int, tuple[list, ...]]]:  # type: ignore[type-arg]
        """The columns of each day `wanted` (every day: None) that holds stories, one
        day at a time; the days wanted that hold none go into `emptied`."""
        columns = self._stored_columns()
        low = 0
        for day in sorted(wanted) if wanted is not None else self._days():
            low, high = self._span(day, low)
            if high > low:
                rows = tuple(column[low:high] for column in columns)
                guids, leaders = rows[1], rows[2]
                for at, (guid, leader) in enumerate(zip(guids, leaders, strict=True)):
                    if guid == leader:
                        leaders[at] = ""  # most stories lead themselves: no guid twice
                yield day, (*rows[:_SHARED], *map(_shared_in_day, rows[_SHARED:]))
            else:
                emptied.append(day)
            low = high

    def _ranked_values(self, rankings: Rankings) -> tuple[object, ...]:
        """The rankings as places in the table (guids are long; places are 4 bytes):
        what is held as places is written as it is; a list of guids (a build that added
        or removed stories, or ranked every story) is looked up guid by guid."""

        def placed(listed: Sequence[str]) -> bytes:
            if isinstance(listed, PlacedGuids):
                return listed.places.tobytes()
            if self._positions is None and len(listed) <= _FEW:  # a topic new in this build
                return array("I", map(self.place_of, listed)).tobytes()
            # map() over a dict's __getitem__ runs in C: these are a few hundred thousand.
            return array("I", map(self._index().__getitem__, listed)).tobytes()

        topics = {topic: placed(listed) for topic, listed in sorted(rankings.by_topic.items())}
        return placed(rankings.order), topics, rankings.spellings

    def _save_briefs(self, store: StateStore, everything: bool) -> None:
        """Every day's briefs (`briefs_in_order`, with `everything`), else the days
        whose stories came or went; a day not known for every story is deleted."""
        if everything:
            briefs = self.briefs_in_order
            if briefs is None or len(briefs) != len(self.times):
                return  # not one per story: none is stored, every day reads the cache
            days = self._day_rows(self._days(), briefs)
            _put_days(store, BRIEFS, ((day, [_brief_row(brief) for brief in of_day])
                                      for day, of_day in days))  # fmt: skip
            return
        _put_days(store, BRIEFS, ((day, self._briefs.get(day))
                                  for day in sorted(self._briefs_dirty)))  # fmt: skip
        self._briefs_dirty = set()

    def _days(self) -> list[int]:
        return sorted({int(time // DAY) for time in self.times})

    @staticmethod
    def remembered(store: StateStore) -> bool:
        return store.get(STORIES, META) is not None

    @staticmethod
    def forget(store: StateStore) -> None:
        store.delete_many(STORIES, [META])


def _brief_row(brief: Brief) -> BriefRow:
    # A time of whole seconds comes back exactly from the story's time (most do).
    published = None if brief.published.microsecond == 0 else brief.published.isoformat()
    return brief.title, brief.words, brief.provider_key, published


def _put_days(
    store: StateStore, namespace: str, days: Iterable[tuple[int, list[Any] | None]]
) -> None:
    """Each day's rows into a namespace beside the table, one day packed at a time; a
    day without rows (no story, or not known for every story) is deleted."""
    gone: list[str] = []

    def values() -> Iterator[tuple[str, bytes]]:
        for day, rows in days:
            if rows:
                yield str(day), _deflated(rows)
            else:
                gone.append(str(day))

    store.put_many(namespace, values())
    store.delete_many(namespace, gone)


def _deflated(rows: list[Any]) -> bytes:
    # A day's titles, words and file paths share much of their text: deflated, they
    # take about a quarter of the bytes (benchmarks/bench_scale.py, "state by kind").
    return pack(zlib.compress(marshal.dumps(rows), 1))


def _inflated(data: bytes, width: int | None) -> list[Any]:
    """A day's rows as `_deflated` wrote them, each a tuple (of `width` values)."""
    try:
        rows = marshal.loads(zlib.decompress(unpack(data)))
    except (zlib.error, ValueError, TypeError, EOFError) as exc:
        raise Undecodable(str(exc)) from None
    if not isinstance(rows, list) or not all(
        isinstance(row, tuple) and (width is None or len(row) == width) for row in rows
    ):
        raise Undecodable("not a day's rows")
    return rows
