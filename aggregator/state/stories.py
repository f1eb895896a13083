"""The story table ("stories" namespace): every same-link story of the last build, in
time order, so that the next build can apply a few changed files without reading the
others (aggregator.delta).

Per same-link story: its time (what clustering orders by), guid, the parse-cache keys
of the files holding its records, and its cluster's first story (the story it is shown
as); per shown story, its StoryKey (what ranking needs). Stored in one value per UTC
day of publication, so a build that changes a few stories rewrites a few days. It is
remembered together with the snapshot and is valid only with it: a full build rewrites
it, and forgets it first, so a build killed half-way leaves none to be misled by.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aggregator.state.codec import Undecodable, pack, unpack
from aggregator.state.store import StateStore

if TYPE_CHECKING:
    from aggregator.rank import StoryKey

STORIES = "stories"
META = "meta"
DAY = 86_400


@dataclass(slots=True)
class StoryTable:
    """One build's working copy of the table (mutable: a build edits it in place)."""

    times: list[float] = field(default_factory=list)
    guids: list[str] = field(default_factory=list)
    files: list[tuple[str, ...]] = field(default_factory=list)
    leaders: list[str] = field(default_factory=list)  # guid of the cluster's first story
    keys: dict[str, StoryKey] = field(default_factory=dict)  # by shown story's guid
    filtered: int = 0  # records the sources' filters left out
    dirty: set[int] = field(default_factory=set)  # days to write again
    _positions: dict[str, int] | None = None
    _clusters: set[str] | None = None

    def clusters(self) -> set[str]:
        """The guids that lead a cluster of more than one story."""
        if self._clusters is None:
            self._clusters = {leader for leader, guid in zip(self.leaders, self.guids,
                                                             strict=True) if leader != guid}
        return self._clusters

    # --- finding and editing ----------------------------------------------------------
    def position(self, guid: str) -> int | None:
        if self._positions is None:
            self._positions = {guid: position for position, guid in enumerate(self.guids)}
        return self._positions.get(guid)

    def slot(self, time: float, guid: str) -> int:
        """Where a story of this time and guid goes in the time order."""
        position = bisect_left(self.times, time)
        while position < len(self.times) and self.times[position] == time and (
            self.guids[position] < guid
        ):
            position += 1
        return position

    def insert(self, time: float, guid: str, files: tuple[str, ...], leader: str) -> int:
        position = self.slot(time, guid)
        self.times.insert(position, time)
        self.guids.insert(position, guid)
        self.files.insert(position, files)
        self.leaders.insert(position, leader)
        self._positions = None
        self._clusters = None
        self.dirty.add(int(time // DAY))
        return position

    def remove(self, position: int) -> None:
        self.dirty.add(int(self.times[position] // DAY))
        for column in (self.times, self.guids, self.files, self.leaders):
            del column[position]
        self._positions = None
        self._clusters = None

    def set_leader(self, position: int, leader: str) -> None:
        if self.leaders[position] != leader:
            self.leaders[position] = leader
            self.dirty.add(int(self.times[position] // DAY))
            self._clusters = None

    def set_key(self, guid: str, key: StoryKey | None) -> None:
        if self.keys.get(guid) == key:
            return
        if key is None:
            self.keys.pop(guid, None)
        else:
            self.keys[guid] = key
        position = self.position(guid)
        if position is not None:
            self.dirty.add(int(self.times[position] // DAY))

    # --- the store ------------------------------------------------------------------
    @classmethod
    def load(cls, store: StateStore) -> StoryTable | None:
        """The table the last build left, or None if there is none or it is damaged."""
        from aggregator.rank import StoryKey  # not imported by a build that needs no table

        stored = store.items(STORIES)
        meta = stored.pop(META, None)
        if meta is None:
            return None
        table = cls()
        try:
            table.filtered = int(unpack(meta))
            times, guids, files, leaders = table.times, table.guids, table.files, table.leaders
            keys = table.keys
            for day in sorted(stored, key=int):
                for time, guid, held, leader, key in unpack(stored[day]):
                    times.append(time)
                    guids.append(guid)
                    files.append(held)
                    leaders.append(leader or guid)
                    if key is not None:
                        published = time if key[1] is None else key[1]
                        keys[guid] = StoryKey(key[0], published, guid, *key[2:])
        except (Undecodable, ValueError, TypeError, IndexError):
            return None
        return table

    def save(self, store: StateStore, *, everything: bool = False) -> None:
        """Write the days that changed (every day with `everything`) and the counts."""
        days = self._by_day(None if everything else self.dirty)
        with store.transaction():
            if everything:
                store.delete_many(STORIES, list(store.keys(STORIES)))
            else:
                store.delete_many(STORIES, [str(day) for day, rows in days.items() if not rows])
            store.put_many(STORIES, [(str(day), pack(rows)) for day, rows in days.items() if rows])
            store.put(STORIES, META, pack(self.filtered))
        self.dirty = set()

    def _by_day(self, wanted: set[int] | None) -> dict[int, list[tuple[object, ...]]]:
        days: dict[int, list[tuple[object, ...]]] = {day: [] for day in wanted or ()}
        spans = ([(0, len(self.times))] if wanted is None else
                 [(bisect_left(self.times, day * DAY), bisect_left(self.times, (day + 1) * DAY))
                  for day in sorted(wanted)])  # fmt: skip
        for low, high in spans:
            for position in range(low, high):
                guid, time = self.guids[position], self.times[position]
                key = self.keys.get(guid)
                leader = self.leaders[position]
                value = None if key is None else (
                    key.score, None if key.published == time else key.published,
                    key.provider_key, key.topics, key.filtered_by)  # fmt: skip
                days.setdefault(int(time // DAY), []).append(
                    (time, guid, self.files[position], "" if leader == guid else leader, value)
                )
        return days

    @staticmethod
    def remembered(store: StateStore) -> bool:
        return store.get(STORIES, META) is not None

    @staticmethod
    def forget(store: StateStore) -> None:
        store.delete_many(STORIES, [META])
