"""Score stories, order them, and choose the items of each feed.

score = log2(1 + quality_weight * quality + heat_weight * heat)
        + coverage_weight * log2(outlets)
        + published_seconds / (doubling_hours * 3600)

A story `doubling_hours` newer counts as much as one twice as good and hot; a story
that two outlets cover gains `coverage_weight`, four outlets twice that (`outlets`
counts the providers of its copies, see aggregator.cluster). The score depends only on
the stories, never on when the build runs, so every cron run gives the same order.
Ties: newer first, then by guid.

Choosing a feed's items is greedy: each next item is the one with the best score
after a diversity penalty, `provider_penalty` for every item of the same provider
already chosen for that feed (xQuAD-style: a provider's third story must be that much
better than another provider's first). The penalty never leaves a slot empty, so a feed
holds `max_items` whenever it has that many stories; `max_per_provider` is an optional
hard cap on top.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, replace
from itertools import filterfalse
from operator import attrgetter

from aggregator.cluster import outlets
from aggregator.config import FeedsConfig, RankingConfig
from aggregator.filters import FeedRules
from aggregator.model import Record
from aggregator.topics import assign_slugs, display_names, topic_key


@dataclass(frozen=True, slots=True)
class Topic:
    key: str
    name: str
    slug: str
    title: str | None = None  # [feeds.topics] title: the feed's own title
    description: str | None = None  # [feeds.topics] description


@dataclass(frozen=True, slots=True)
class KnownFeed:
    """What the last build rendered a feed from, kept for a feed whose items and names
    are as they were (see `feed_shapes`): its inputs can be taken as they were instead of
    being worked out from stories that would have to be made first."""

    inputs: bytes  # of its feed files (aggregator.state.feed_cache.feed_inputs)
    page_inputs: bytes  # of its page
    newest: str  # its newest item's `updated`, ISO 8601 (what pages and the OPML show)
    archive_pages: int  # archive documents it linked to


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One feed to write: `topic` is None for the all-topics feed. `known` is set when
    the feed is as the last build left it; its items may then be StoriesOnRead, made
    only if something reads them."""

    topic: Topic | None
    items: Sequence[Record]
    total: int  # stories in this feed before choosing (after its filters)
    known: KnownFeed | None = None

    @property
    def directory(self) -> str:
        """Where the feed lives, relative to the output folder ("" for the all-topics feed)."""
        return feed_directory(self.topic)

    @property
    def guids(self) -> tuple[str, ...]:
        """The items' guids, in order, without making items that are not made yet."""
        items = self.items
        if isinstance(items, StoriesOnRead):
            return items.guids
        return tuple(item.guid for item in items)

    def made(self) -> FeedPlan:
        """This plan with its items made (to send to a worker process)."""
        if isinstance(self.items, tuple):
            return self
        return replace(self, items=tuple(self.items))


def feed_directory(topic: Topic | None) -> str:
    return "" if topic is None else f"topics/{topic.slug}"


class StoriesOnRead(Sequence[Record]):
    """A feed's chosen stories, made from the parse cache the first time anything reads
    them: a rebuild leaves most feeds as they were, and needs only their guids."""

    __slots__ = ("_made", "_make", "guids")

    def __init__(self, guids: tuple[str, ...],
                 make: Callable[[Sequence[str]], tuple[Record, ...]]) -> None:  # fmt: skip
        self.guids = guids
        self._make = make
        self._made: tuple[Record, ...] | None = None

    @property
    def made(self) -> tuple[Record, ...]:
        if self._made is None:
            self._made = self._make(self.guids)
        return self._made

    def __len__(self) -> int:
        return len(self.guids)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        return self.made[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.made)

    def __reduce__(self) -> tuple[object, ...]:
        return (tuple, (self.made,))  # a worker process gets plain stories


def feed_shapes(
    plans: Iterable[KeyPlan | FeedPlan], names: Mapping[str, str]
) -> dict[str, bytes]:
    """A digest per feed directory of what its files show besides its items' own values:
    its topic, total and guids in order, and the site's topic names and folders (items
    show their topics' names and link to their pages). A feed whose shape is as it was,
    and none of whose stories changed, renders as it did."""
    plans = list(plans)
    folders = sorted((plan.topic.key, plan.directory) for plan in plans if plan.topic)
    site = repr((sorted(names.items()), folders)).encode()
    site_digest = hashlib.sha256(site).digest()
    return {
        plan.directory: hashlib.sha256(
            site_digest + repr((plan.topic, plan.total, plan.guids)).encode()
        ).digest()
        for plan in plans
    }


@dataclass(frozen=True, slots=True)
class ScoreParts:
    """A story's score, part by part (what `aggregator explain` shows)."""

    worth: float  # log2(1 + quality_weight * quality + heat_weight * heat)
    coverage: float  # coverage_weight * log2(outlets)
    recency: float  # published seconds / (doubling_hours * 3600)

    @property
    def total(self) -> float:
        return self.worth + self.coverage + self.recency


def score_parts(record: Record, ranking: RankingConfig) -> ScoreParts:
    worth = ranking.quality_weight * record.quality + ranking.heat_weight * record.heat
    coverage = ranking.coverage_weight * math.log2(outlets(record)) if record.copies else 0.0
    return ScoreParts(math.log2(1.0 + worth), coverage,
                      record.published.timestamp() / (ranking.doubling_hours * 3600))  # fmt: skip


def score(record: Record, ranking: RankingConfig) -> float:
    return score_parts(record, ranking).total


def rank(records: Iterable[Record], ranking: RankingConfig) -> list[Record]:
    """Best first; deterministic for equal scores."""
    return [record for _, record in scored(records, ranking)]


def scored(records: Iterable[Record], ranking: RankingConfig) -> list[tuple[float, Record]]:
    """(score, story), best first; deterministic for equal scores."""
    # score() inlined: this runs for every story of every build.
    quality, heat, coverage = ranking.quality_weight, ranking.heat_weight, ranking.coverage_weight
    doubling = ranking.doubling_hours * 3600
    log2 = math.log2
    keyed = []
    for record in records:
        published = record.published.timestamp()
        value = log2(1.0 + quality * record.quality + heat * record.heat) + published / doubling
        if record.copies:
            value += coverage * log2(outlets(record))
        keyed.append((-value, -published, record.guid, record))
    keyed.sort(key=lambda entry: entry[:3])
    return [(-entry[0], entry[3]) for entry in keyed]


@dataclass(frozen=True, slots=True)
class Choice:
    """One story chosen for a feed: its score and the diversity penalty it paid."""

    record: Record
    score: float
    penalty: float


def choose(
    ranked: Sequence[tuple[float, Record]], max_items: int, ranking: RankingConfig
) -> list[Choice]:
    """The feed's items in order: greedy by score less the diversity penalty (see the
    module). Reads `ranked` only as far as it must: an unread story scores at most its
    own score, so once the best waiting one beats that, it is taken."""
    penalty, cap = ranking.provider_penalty, ranking.max_per_provider
    if not penalty and not cap:
        return [Choice(record, value, 0.0) for value, record in ranked[:max_items]]
    chosen: list[Choice] = []
    counts: Counter[str] = Counter()
    waiting: dict[str, deque[int]] = {}  # read, behind their provider's story in the heap
    heap: list[tuple[float, int, str]] = []  # (-(score - penalty), position, provider)
    in_heap: set[str] = set()
    read = 0

    def offer(position: int, provider: str) -> None:
        adjusted = ranked[position][0] - penalty * counts[provider]
        heapq.heappush(heap, (-adjusted, position, provider))
        in_heap.add(provider)

    while len(chosen) < max_items:
        if read < len(ranked) and (not heap or -heap[0][0] < ranked[read][0]):
            provider = ranked[read][1].provider_key
            if cap and counts[provider] >= cap:
                pass  # capped: never chosen
            elif provider in in_heap:
                waiting.setdefault(provider, deque()).append(read)
            else:
                offer(read, provider)
            read += 1
            continue
        if not heap:
            break
        _, position, provider = heapq.heappop(heap)
        in_heap.discard(provider)
        value, record = ranked[position]
        chosen.append(Choice(record, value, penalty * counts[provider]))
        counts[provider] += 1
        queue = waiting.get(provider)
        if queue and not (cap and counts[provider] >= cap):
            offer(queue.popleft(), provider)
    return chosen


def select(ranked: Sequence[Record], max_items: int, ranking: RankingConfig) -> tuple[Record, ...]:
    """The items `choose` takes from stories already in rank order."""
    with_scores = [(score(record, ranking), record) for record in ranked]
    return tuple(choice.record for choice in choose(with_scores, max_items, ranking))


def topics_of(records: Sequence[Record]) -> dict[str, Topic]:
    """Every topic key with its display name and slug."""
    return _topics_from(topic for record in records for topic in record.topics)


def _topics_from(names: Iterable[str] | Counter[str]) -> dict[str, Topic]:
    shown = display_names(names)
    slugs = assign_slugs(shown)
    return {key: Topic(key, shown[key], slugs[key]) for key in sorted(shown)}


@dataclass(frozen=True, slots=True)
class StoryKey:
    """What choosing feeds needs of one story, made once per story: an incremental
    build keeps these for the stories no change touched and plans every feed from
    them, without the stories themselves (aggregator.delta)."""

    score: float
    published: float  # seconds since the epoch
    guid: str
    provider_key: str
    topics: tuple[str, ...]
    filtered_by: tuple[int, ...] = ()  # the [[filters]] rules (FeedRules.indices) it fails


def story_key(record: Record, ranking: RankingConfig, rules: FeedRules | None = None) -> StoryKey:
    failed = () if rules is None else rules.failed_by(record)
    return StoryKey(score(record, ranking), record.published.timestamp(), record.guid,
                    record.provider_key, record.topics, failed)  # fmt: skip


def ranked_keys(keys: Iterable[StoryKey]) -> list[tuple[float, StoryKey]]:
    """(score, story), best first; ties: newer first, then by guid (as `scored`)."""
    # Two stable sorts with C key functions instead of a lambda per story: by guid, then
    # by score and time, best first; equal ones stay in guid order.
    ordered = sorted(keys, key=attrgetter("guid"))
    ordered.sort(key=attrgetter("score", "published"), reverse=True)
    return [(key.score, key) for key in ordered]


@dataclass(slots=True)
class Rankings:
    """Every story in rank order, by guid, for the all-topics feed and for each topic,
    before the feeds' filters; and how often each spelling of a topic name is used (the
    topics' display names come from it). What choosing feeds reads (`plan_ranked`);
    the story table keeps it, so that a build that changes a few stories moves a few
    entries (`rerank`) instead of sorting every story again. Mutable: `rerank` edits
    it in place. A list may be any mutable sequence of guids (the story table reads
    its own as places in the table, aggregator.state.stories.PlacedGuids); one with a
    `without(guids)` method gives its copy without those guids itself."""

    order: MutableSequence[str]  # every shown story, best first
    by_topic: dict[str, MutableSequence[str]]  # topic key -> its stories, best first
    spellings: dict[str, int]  # topic name as written -> stories that write it so


def rank_stories(keys: Iterable[StoryKey]) -> Rankings:
    """The Rankings of these stories, from scratch."""
    ranked = ranked_keys(keys)
    # Count each list of topics once (far fewer lists than stories), then its names.
    spellings: Counter[str] = Counter()
    for listed, count in Counter(key.topics for _, key in ranked).items():
        for name in listed:
            spellings[name] += count
    by_topic: dict[str, MutableSequence[str]] = {}
    spelled: dict[str, MutableSequence[str]] = {}  # each spelling's list, found once
    for _, key in ranked:
        for name in key.topics:
            found = spelled.get(name)
            if found is None:
                found = spelled[name] = by_topic.setdefault(topic_key(name), [])
            found.append(key.guid)
    return Rankings([key.guid for _, key in ranked], by_topic, dict(spellings))


def rerank(
    rankings: Rankings,
    changes: Iterable[tuple[StoryKey | None, StoryKey | None]],
    key_of: Callable[[str], StoryKey],
) -> set[str | None]:
    """Apply changed stories to `rankings` in place: each (key before, key now), None
    for a story not shown before or now. `key_of` gives every other story's key.
    Returns the lists it touched: topic keys, None for the all-topics order; a list not
    touched holds the same stories with the same keys as before.

    What leaves goes in one pass over each list it was in, and what comes is put in
    its place by bisection: the same lists `rank_stories` would make from every key.
    """
    changes = [(old, new) for old, new in changes if old != new]
    if not changes:
        return set()
    gone = {old.guid for old, _ in changes if old is not None}
    if gone:
        rankings.order = _dropped(rankings.order, gone)
    left = {topic_key(name) for old, _ in changes if old is not None for name in old.topics}
    for topic in left:
        listed = rankings.by_topic.get(topic)
        if listed is not None:
            rankings.by_topic[topic] = _dropped(listed, gone)
    spellings = rankings.spellings
    for old, new in changes:
        if old is not None:
            for name in old.topics:
                spellings[name] -= 1
                if not spellings[name]:
                    del spellings[name]
        if new is not None:
            for name in new.topics:
                spellings[name] = spellings.get(name, 0) + 1

    def order(guid: str) -> tuple[float, float, str]:
        key = key_of(guid)
        return -key.score, -key.published, guid  # as ranked_keys orders them

    came = {topic_key(name) for _, new in changes if new is not None for name in new.topics}

    def insert(listed: MutableSequence[str], guid: str) -> None:
        listed.insert(bisect_right(listed, order(guid), key=order), guid)  # as insort puts it

    for _, new in changes:
        if new is None:
            continue
        insert(rankings.order, new.guid)
        for name in new.topics:
            insert(rankings.by_topic.setdefault(topic_key(name), []), new.guid)
    for topic in left | came:
        if not rankings.by_topic.get(topic, True):
            del rankings.by_topic[topic]  # no story is left in it
    return {None, *left, *came}


def _dropped(listed: MutableSequence[str], gone: set[str]) -> MutableSequence[str]:
    """A copy of a rank order without the guids `gone`: by the list's own `without`
    where it has one, else in one pass (filterfalse over a set's __contains__ runs in C)."""
    without = getattr(listed, "without", None)
    if without is not None:
        return without(gone)  # type: ignore[no-any-return]
    return list(filterfalse(gone.__contains__, listed))


class _Ranked(Sequence[tuple[float, StoryKey]]):
    """A feed's stories in rank order as `choose` reads them, (score, key), each key
    made only when read: a feed reads a few of its stories."""

    __slots__ = ("_guids", "_key_of")

    def __init__(self, guids: Sequence[str], key_of: Callable[[str], StoryKey]) -> None:
        self._guids = guids
        self._key_of = key_of

    def __len__(self) -> int:
        return len(self._guids)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._guids)))]
        key = self._key_of(self._guids[index])
        return key.score, key


def _feed_lists(
    rankings: Rankings,
    key_of: Callable[[str], StoryKey],
    rules: FeedRules | None,
) -> tuple[dict[str, Topic], list[tuple[Topic | None, Sequence[str]]]]:
    """Every topic, and each feed's stories in rank order after the feed's filters: the
    all-topics feed first, then one feed per topic in slug order."""
    topics = _topics_from(Counter(rankings.spellings))
    feeds: list[tuple[Topic | None, Sequence[str]]] = [(None, rankings.order)]
    feeds.extend((topic, rankings.by_topic[topic.key])
                 for topic in sorted(topics.values(), key=lambda t: t.slug))  # fmt: skip
    if rules is None or not rules.indices:
        return topics, feeds
    filtered = []
    for topic, guids in feeds:
        applied = rules.indices_for(None if topic is None else topic.key,
                                    None if topic is None else topic.slug)  # fmt: skip
        if applied:
            guids = [g for g in guids if applied.isdisjoint(key_of(g).filtered_by)]
        filtered.append((topic, guids))
    return topics, filtered


def key_candidates(
    keys: Iterable[StoryKey], rules: FeedRules | None = None
) -> tuple[dict[str, Topic], list[tuple[Topic | None, list[tuple[float, StoryKey]]]]]:
    """Every topic, and each feed's stories in rank order after the feed's filters: the
    all-topics feed first, then one feed per topic in slug order."""
    by_guid = {key.guid: key for key in keys}
    topics, feeds = _feed_lists(rank_stories(by_guid.values()), by_guid.__getitem__, rules)
    return topics, [(topic, [(by_guid[guid].score, by_guid[guid]) for guid in guids])
                    for topic, guids in feeds]  # fmt: skip


def feed_candidates(
    records: Sequence[Record], ranking: RankingConfig, rules: FeedRules | None = None
) -> tuple[dict[str, Topic], list[tuple[Topic | None, list[tuple[float, Record]]]]]:
    """`key_candidates` with the stories themselves (what `aggregator explain` shows)."""
    by_guid = {record.guid: record for record in records}
    topics, feeds = key_candidates([story_key(r, ranking, rules) for r in records], rules)
    return topics, [(topic, [(value, by_guid[key.guid]) for value, key in entries])
                    for topic, entries in feeds]  # fmt: skip


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """One feed's choice, by guid: what FeedPlan holds before the stories are looked up."""

    topic: Topic | None
    guids: tuple[str, ...]
    total: int

    @property
    def directory(self) -> str:
        return feed_directory(self.topic)

    def with_stories(self, stories: Mapping[str, Record]) -> FeedPlan:
        return FeedPlan(self.topic, tuple(stories[guid] for guid in self.guids), self.total)


def plan_keys(
    keys: Iterable[StoryKey],
    ranking: RankingConfig,
    max_items: int,
    rules: FeedRules | None = None,
    feeds: FeedsConfig | None = None,
) -> tuple[list[KeyPlan], dict[str, Topic]]:
    """`plan_ranked` for these stories, ranked from scratch."""
    by_guid = {key.guid: key for key in keys}
    rankings = rank_stories(by_guid.values())
    return plan_ranked(rankings, by_guid.__getitem__, ranking, max_items, rules, feeds)


def plan_ranked(
    rankings: Rankings,
    key_of: Callable[[str], StoryKey],
    ranking: RankingConfig,
    max_items: int,
    rules: FeedRules | None = None,
    feeds: FeedsConfig | None = None,
    earlier: Callable[[Topic | None], tuple[tuple[str, ...], int] | None] | None = None,
) -> tuple[list[KeyPlan], dict[str, Topic]]:
    """Every feed's choice: the all-topics feed first, then one feed per topic in slug
    order; `feeds` gives topics their own settings ([feeds.topics]: max_items, title,
    description, hidden). Reads each feed's stories only as far as choosing does.
    `earlier(topic)` may give a feed's last choice and total, where its stories, their
    keys and these settings are as they were then: that choice is taken as it is."""
    topics, candidates = _feed_lists(rankings, key_of, rules)
    plans = []
    for topic, guids in candidates:
        limit = max_items
        if topic is not None and feeds is not None:
            own = feeds.for_topic(topic.key, topic.slug)
            if own is not None and own.hidden:
                continue
            limit = feeds.limit_for(topic.key, topic.slug)
            if own is not None:
                topic = replace(topic, title=own.title, description=own.description)
                topics[topic.key] = topic
        last = None if earlier is None else earlier(topic)
        if last is not None and last[1] == len(guids) and _holds(guids, last[0]):
            chosen = last[0]
        else:
            ranked = _Ranked(guids, key_of)
            chosen = tuple(choice.record.guid for choice in choose(ranked, limit, ranking))
        plans.append(KeyPlan(topic, chosen, len(guids)))
    return plans, topics


def _holds(listed: Sequence[str], chosen: tuple[str, ...]) -> bool:
    """Whether `listed` holds every chosen guid near its start, where choosing found
    them: read one by one (a table's rank order notes the place of each guid read, so
    the stories are found without an index of every guid), a bounded way."""
    wanted = set(chosen)
    for index in range(min(len(listed), 64 * len(chosen) + 256)):
        if not wanted:
            break
        wanted.discard(listed[index])
    return not wanted


def plan_feeds(
    records: Sequence[Record],
    ranking: RankingConfig,
    max_items: int,
    rules: FeedRules | None = None,
    feeds: FeedsConfig | None = None,
) -> tuple[list[FeedPlan], dict[str, Topic]]:
    """`plan_keys` for these stories, with the chosen stories looked up."""
    by_guid = {record.guid: record for record in records}
    keys = [story_key(record, ranking, rules) for record in records]
    plans, topics = plan_keys(keys, ranking, max_items, rules, feeds)
    return [plan.with_stories(by_guid) for plan in plans], topics
