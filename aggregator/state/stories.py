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
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import filterfalse
from typing import TYPE_CHECKING

from aggregator.state.codec import Undecodable, pack, unpack
from aggregator.state.store import StateStore

if TYPE_CHECKING:
    from aggregator.rank import Rankings, StoryKey

STORIES = "stories"
META = "meta"
RANKED = "rank"  # the rankings: every feed's order, and the spellings
FEEDS = "feeds"  # what each feed was rendered from (see `StoryTable.feeds`)
TABLE_LAYOUT = 2  # of the values below; another one reads as no table
DAY = 86_400
_COLUMNS = 9
_SHARED = 6  # the columns from providers on hold values shared by many stories


def _rankings_from(values: tuple[bytes, dict[str, bytes], dict[str, int]],
                   guids: list[str]) -> Rankings:  # fmt: skip
    """The Rankings that `StoryTable._ranked_values` stored, by the table's guids."""
    from aggregator.rank import Rankings  # not imported by a build that needs no table

    places, topics, spellings = values
    order = list(map(guids.__getitem__, array("I", places)))
    by_topic = {topic: list(map(guids.__getitem__, array("I", places)))
                for topic, places in topics.items()}  # fmt: skip
    return Rankings(order, by_topic, dict(spellings))


@dataclass(slots=True)
class StoryTable:
    """One build's working copy of the table (mutable: a build edits it in place)."""

    times: list[float] = field(default_factory=list)
    guids: list[str] = field(default_factory=list)
    files: list[tuple[str, ...]] = field(default_factory=list)
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
    # newest item's date, archive pages); see aggregator.rank.KnownFeed and feed_shapes.
    feeds: dict[str, tuple[bytes, bytes, bytes, str, int]] = field(default_factory=dict)
    _feeds_stored: dict[str, tuple[bytes, bytes, bytes, str, int]] | None = None
    _encoded: dict[str, bytes] = field(default_factory=dict)  # topic places as stored
    _order_places: bytes | None = None  # the all-topics order's places as stored
    _reshaped: bool = False  # a story came or went: every place may have moved
    dirty: set[int] = field(default_factory=set)  # days to write again
    _positions: dict[str, int] | None = None
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
        return self._places().get(guid)

    def _places(self) -> dict[str, int]:
        if self._positions is None:
            self._positions = dict(zip(self.guids, range(len(self.guids)), strict=True))
        return self._positions

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

    def insert(self, time: float, guid: str, files: tuple[str, ...], leader: str) -> int:
        position = self.slot(time, guid)
        for column, value in zip(self._columns(), (time, guid, files, leader),
                                 strict=False):  # fmt: skip
            column.insert(position, value)
        for column in self._columns()[4:]:
            column.insert(position, None)
        self._positions = None
        self._clusters = None
        self._reshaped = True
        self.dirty.add(int(time // DAY))
        return position

    def remove(self, position: int) -> None:
        self.dirty.add(int(self.times[position] // DAY))
        for column in self._columns():
            del column[position]
        self._positions = None
        self._clusters = None
        self._reshaped = True

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
        table = cls()
        try:
            layout, table.filtered = unpack(meta)
            if layout != TABLE_LAYOUT:
                return None
            columns = table._columns()
            # Providers, topics and failed rules repeat from story to story: one object
            # for each value (126 MB less at a million stories, most of it topic lists).
            shared: dict[object, object] = {}
            one = shared.setdefault
            for day in sorted(stored, key=int):
                values = unpack(stored.pop(day))  # let go of each day's bytes once read
                if len(values) != _COLUMNS or len({len(v) for v in values}) != 1:
                    return None
                for index, (column, value) in enumerate(zip(columns, values, strict=True)):
                    column.extend(map(one, value, value) if index >= _SHARED else value)
            guids, leaders = table.guids, table.leaders
            for position in [p for p, leader in enumerate(leaders) if not leader]:
                leaders[position] = guids[position]  # stored as "": leads itself
            values = unpack(ranked)
            table.rankings = _rankings_from(values, guids)
            table._order_places = values[0]
            table._encoded = dict(values[1])
            if feeds is not None:  # none: every feed is rendered from its stories
                known = unpack(feeds)
                if all(isinstance(v, tuple) and len(v) == 5 for v in known.values()):
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
                store.delete_many(STORIES, list(store.keys(STORIES)))
            emptied: list[int] = []
            # Each day packed as the store takes it: a full build's table, packed at
            # once, would hold a quarter of a GB more at a million stories, at the
            # build's peak (benchmarks/bench_scale.py, "cold").
            days = self._by_day(None if everything else self.dirty, emptied)
            store.put_many(STORIES, ((str(day), pack(rows)) for day, rows in days))
            store.delete_many(STORIES, [str(day) for day in emptied])
            if rankings is not None:
                store.put(STORIES, RANKED, pack(self._ranked_values(rankings)))
                self._reshaped = False
            if everything or self.feeds != self._feeds_stored:
                store.put(STORIES, FEEDS, pack(self.feeds))
                self._feeds_stored = dict(self.feeds)
            store.put(STORIES, META, pack((TABLE_LAYOUT, self.filtered)))
        self.dirty = set()

    def _by_day(
        self, wanted: set[int] | None, emptied: list[int]
    ) -> Iterator[tuple[int, tuple[list, ...]]]:  # type: ignore[type-arg]
        """The columns of each day `wanted` (every day: None) that holds stories, one
        day at a time; the days wanted that hold none go into `emptied`."""
        columns = self._columns()
        low = 0
        for day in sorted(wanted) if wanted is not None else self._days():
            low = bisect_left(self.times, day * DAY, low)
            high = bisect_left(self.times, (day + 1) * DAY, low)
            if high > low:
                rows = tuple(column[low:high] for column in columns)
                guids, leaders = rows[1], rows[3]
                for at, (guid, leader) in enumerate(zip(guids, leaders, strict=True)):
                    if guid == leader:
                        leaders[at] = ""  # most stories lead themselves: no guid twice
                yield day, rows
            else:
                emptied.append(day)
            low = high

    def _ranked_values(self, rankings: Rankings) -> tuple[object, ...]:
        """The rankings as places in the table (guids are long; places are 4 bytes).
        While no story came or went, the places of a topic `rerank` left alone are as
        they were: its value as loaded is written again."""
        # map() over a dict's __getitem__ runs in C: these are a few hundred thousand.
        in_table = self._places().__getitem__
        encoded = self._encoded
        if not self._reshaped and self._order_places is not None:
            order = self._replayed(rankings, in_table)
        else:
            encoded.clear()
            order = array("I", map(in_table, rankings.order)).tobytes()
        for topic in [topic for topic in encoded if topic not in rankings.by_topic]:
            del encoded[topic]
        for topic, guids in rankings.by_topic.items():
            if topic not in encoded:
                encoded[topic] = array("I", map(in_table, guids)).tobytes()
        rankings.log = []
        self._order_places = order
        return order, dict(sorted(encoded.items())), rankings.spellings

    def _replayed(self, rankings: Rankings, in_table: Callable[[str], int]) -> bytes:
        """The places of the lists `rerank` edited, made by doing what it did (its log)
        to the places stored: while no story came or went, every place is as it was,
        and a few edits to arrays of places cost far less than looking up the place of
        every story of the lists again (about 300 ns each at a million stories, and the
        all-topics order holds them all). Updates the topics' encoded values; returns
        the order's."""
        encoded = self._encoded
        lists: dict[str | None, array[int]] = {None: array("I", self._order_places or b"")}

        def places_of(topic: str | None) -> array[int]:
            found = lists.get(topic)
            if found is None:
                found = lists[topic] = array("I", encoded.get(topic, b""))  # type: ignore[arg-type]
            return found

        for gone, left, inserted in rankings.log:
            if gone:
                out = set(map(in_table, gone))
                for topic in (None, *left):
                    lists[topic] = array("I", filterfalse(out.__contains__, places_of(topic)))
            for topic, index, guid in inserted:
                places_of(topic).insert(index, in_table(guid))
        for topic, places in lists.items():
            if topic is not None:
                encoded[topic] = places.tobytes()
        return lists[None].tobytes()

    def _days(self) -> list[int]:
        return sorted({int(time // DAY) for time in self.times})

    @staticmethod
    def remembered(store: StateStore) -> bool:
        return store.get(STORIES, META) is not None

    @staticmethod
    def forget(store: StateStore) -> None:
        store.delete_many(STORIES, [META])
