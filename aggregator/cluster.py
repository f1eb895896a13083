"""Stage: one item per story. Copies of a story under other links become one record.

Two steps, both deterministic whatever the order records arrive in:

1. Records with the same canonical link (guid) merge (`merge.merge_duplicates`).
2. Stories with different links cluster when they lie within `window_hours` of the
   cluster's first story and their titles are nearly the same: rapidfuzz's
   token_sort_ratio of the normalised words (title words without small words; where a
   title has fewer than four, the excerpt's first words too) is at least
   `title_similarity`. Templated titles stay apart (`templated_apart`): titles that
   differ in a number or a month, or only by a word or two put in the place of others
   ("Meta cuts ..." / "Meta expands ...", "2019 release wave 2" / "2020 release wave
   1"), or that each carry a name the other lacks, are never one story. The same
   provider filing the same title on days far apart is a series, not a copy.

Stories are taken in time order (published, then guid). Each joins the best-matching
cluster whose first story lies within the window and none of whose stories is the same
template filled otherwise, or starts a new one. Candidates come from an index of word
pairs read back only as far as the window reaches, so a story is compared only with the
few earlier stories that share a pair of adjacent words with it: the cost grows with
the number of stories, not its square.

The cluster's first story is its identity: the item keeps that story's guid and dates,
so a copy published later that joins it never makes readers show the story again (only
a copy dated before it would take its place). The representative (highest quality, then
heat: `merge.preference`) gives the title, link, excerpt, image and provider; the others
are listed in `Record.copies`.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice, pairwise
from typing import Any

from aggregator.config import ClusteringConfig
from aggregator.markup import html_to_text
from aggregator.merge import merge_group, preference, union_topics, unique_related
from aggregator.model import (
    R_EXCERPT,
    R_GUID,
    R_PROVIDER,
    R_PUBLISHED,
    R_TITLE,
    Record,
    Related,
    provider_key,
)

_WORD = re.compile(r"\d+|[^\W\d_]+")  # digits and letters apart: "38M" -> "38", "M"
_SMALL = (
    "a an and are as at be by for from has have in into is it its of on or s that the this to "
    "was were will with"
)
_CALENDAR = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday "
    "friday saturday sunday spring summer autumn fall winter"
)
SMALL_WORDS = frozenset(_SMALL.split())  # left out of the words compared
CALENDAR = frozenset(_CALENDAR.split())  # two titles that differ in these are a series
SHORT_TITLE_WORDS = 4  # fewer title words than this: the excerpt's opening words count too
EXCERPT_WORDS = 24
MAX_CANDIDATES_PER_PAIR = 64  # a word pair used this often in the window says little
# Every this many stories, assign_leaders lets go of what only stories that have left
# the window used: at a million stories its index would otherwise hold every word pair
# ever seen (benchmarks/bench_scale.py, "cold": the build's peak memory is in clustering).
FORGET_EVERY = 16_384
SERIES_SECONDS = 20 * 3600  # one provider, one title, further apart: a series
INFLECTION = 75  # fuzz.ratio of two words above which they are forms of one word


@dataclass(frozen=True, slots=True)
class Signature:
    """What clustering compares of a story: its content words and their sorted text
    (what token_sort_ratio compares), made once per story."""

    words: tuple[str, ...]  # normalised content words, in title order
    text: str  # the words sorted and joined

    @property
    def numbers(self) -> frozenset[str]:
        return frozenset(word for word in self.words if word.isdigit())

    @property
    def calendar(self) -> frozenset[str]:
        return CALENDAR.intersection(self.words)


@dataclass(frozen=True, slots=True)
class Brief:
    """What clustering reads of a record: a build holds this, made where the record was
    parsed, instead of the record, which it makes again only for a story it merges or
    a feed shows (aggregator.collect)."""

    guid: str
    published: datetime
    title: str
    words: str  # content_words, joined by spaces (a word holds none)
    provider_key: str


def brief_of(record: Record) -> Brief:
    return Brief(record.guid, record.published, record.title, " ".join(content_words(record)),
                 record.provider_key)  # fmt: skip


def brief_from_values(values: Sequence[Any]) -> Brief:
    """`brief_of` the record given as its plain values (model.record_values), without
    making the record: an incremental build reads this of the stories around a change
    (aggregator.delta), thousands of them, and needs the records of only a few."""
    title, guid, provider = values[R_TITLE], values[R_GUID], values[R_PROVIDER]
    name, domain = (provider[0], provider[1]) if provider else (None, None)
    return Brief(guid, datetime.fromisoformat(values[R_PUBLISHED]), title,
                 " ".join(_words(title, values[R_EXCERPT])),
                 provider_key(name, domain, guid))  # fmt: skip


def content_words(record: Record | Brief) -> list[str]:
    """The title's words, lower-cased, without small words; where fewer than four are
    left, the excerpt's first words too."""
    if isinstance(record, Brief):
        return record.words.split()  # worked out when the record was read
    return _words(record.title, record.excerpt)


def _words(title: str, excerpt: str) -> list[str]:
    # One casefold and one findall per title: this runs for every story of a build.
    words = [word for word in _WORD.findall(title.casefold()) if word not in SMALL_WORDS]
    if len(words) < SHORT_TITLE_WORDS and excerpt:
        extra = _WORD.findall(html_to_text(excerpt).casefold())[:EXCERPT_WORDS]
        words.extend(word for word in extra if word not in SMALL_WORDS)
    return words


def signature(record: Record | Brief) -> Signature:
    words = content_words(record)
    return Signature(tuple(words), " ".join(sorted(words)))


def _names(title: str) -> frozenset[str]:
    """The words that look like names: capitalised inside a title that is not written
    in Title Case (where every word is capitalised and none can be told for a name)."""
    words = [word for word in _WORD.findall(title)[1:] if not word.isdigit()]
    capitalised = [word for word in words if word[0].isupper()]
    if not capitalised or len(capitalised) >= 0.6 * len(words):
        return frozenset()
    return frozenset(word.casefold() for word in capitalised)


def templated_apart(a: Signature, b: Signature, title_a: str, title_b: str) -> bool:
    """True when two similar titles are a template filled in two ways: a different
    number or date, words put in the place of others and nothing else changed ("Meta
    cuts ..." / "Meta expands ..."), or a name swapped (each carries a name the other
    lacks). Words that are forms of one another (exposes/exposed) are no difference."""
    if a.numbers != b.numbers or a.calendar != b.calendar:
        return True
    only_a = set(a.words) - set(b.words)
    only_b = set(b.words) - set(a.words)
    if not only_a or not only_b:
        return False  # one title adds words to the other
    from rapidfuzz import fuzz  # imported when clustering runs: a rerun that skips it starts faster

    left_a = {w for w in only_a if not any(fuzz.ratio(w, v) >= INFLECTION for v in only_b)}
    left_b = {w for w in only_b if not any(fuzz.ratio(w, v) >= INFLECTION for v in only_a)}
    if not left_a or not left_b:
        return False
    if left_a & _names(title_a) and left_b & _names(title_b):
        return True
    # A template: the titles differ only by a word or two put in the place of others,
    # slot by slot. Words added or left out anywhere mean the story is told otherwise.
    from difflib import SequenceMatcher

    opcodes = SequenceMatcher(None, a.words, b.words, autojunk=False).get_opcodes()
    changes = [(a.words[i1:i2], b.words[j1:j2]) for tag, i1, i2, j1, j2 in opcodes
               if tag != "equal"]  # fmt: skip
    if all(len(old) in (1, 2) and len(new) in (1, 2) for old, new in changes):
        return any(left_a.intersection(old) and left_b.intersection(new) for old, new in changes)
    return False


def similarity(
    a: Record | Brief, sa: Signature, b: Record | Brief, sb: Signature, config: ClusteringConfig
) -> float:
    """How alike two stories are (0-100), or 0 when they must stay apart."""
    if not sa.text or not sb.text:
        return 0.0
    from rapidfuzz import fuzz

    score = fuzz.ratio(sa.text, sb.text, score_cutoff=config.title_similarity)
    if not score or not _may_be_one(a, sa, b, sb):
        return 0.0
    return score


def _may_be_one(a: Record | Brief, sa: Signature, b: Record | Brief, sb: Signature) -> bool:
    """The checks past the similarity of the words: templates, and a provider's series."""
    if templated_apart(sa, sb, a.title, b.title):
        return False
    apart = abs(a.published.timestamp() - b.published.timestamp())
    return apart <= SERIES_SECONDS or a.provider_key != b.provider_key


@dataclass(frozen=True, slots=True)
class Clustering:
    """The stories of a build and how they came about."""

    stories: list[Record]  # one record per story
    members: dict[str, tuple[Record, ...]]  # story guid -> its records, for merged stories
    duplicates: int  # records merged into another: same link, or a copy of the story
    # Each same-link record (what clustering compares) with its story's guid, in time
    # order: what an incremental build starts from (aggregator.delta).
    by_link: tuple[tuple[Record, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Stories:
    """The stories of a build as `cluster_briefs` finds them, from the records' briefs:
    every record a story or a link merges is made (`record`), the others are not."""

    briefs: list[Brief]  # one per story, in the order of Clustering.stories
    merged: dict[str, Record]  # story guid -> its record, for stories of several records
    links: dict[str, Record]  # guid -> its records merged, for links of several records
    first: dict[str, int]  # guid -> its first record (an index into the briefs given)
    members: dict[str, tuple[int, ...]]  # as Clustering.members, the records by index
    duplicates: int
    by_link: tuple[tuple[Brief, str], ...]  # as Clustering.by_link

    def story(self, guid: str, record: Callable[[int], Record]) -> Record:
        """The record of the story `guid` (`record(index)` makes a record read)."""
        found = self.merged.get(guid)
        return record(self.first[guid]) if found is None else found

    def link(self, guid: str, record: Callable[[int], Record]) -> Record:
        """The record of the same-link records of `guid`."""
        found = self.links.get(guid)
        return record(self.first[guid]) if found is None else found

    def clustering(self, record: Callable[[int], Record]) -> Clustering:
        """The same stories, every one a record (what `explain` shows)."""
        members = {guid: tuple(record(index) for index in indices)
                   for guid, indices in self.members.items()}  # fmt: skip
        return Clustering([self.story(brief.guid, record) for brief in self.briefs], members,
                          self.duplicates,
                          tuple((self.link(brief.guid, record), leader)
                                for brief, leader in self.by_link))  # fmt: skip


def link_record(group: list[Record]) -> Record:
    """One record for the records of one link."""
    return group[0] if len(group) == 1 else merge_group(group)


def story_record(group: list[Record]) -> Record:
    """One record for a cluster's same-link records, in time order."""
    return group[0] if len(group) == 1 else merge_cluster(group)


def clustering_inputs(record: Record) -> tuple[object, ...]:
    """What clustering reads of a same-link record: when these are unchanged, so is
    every story's membership."""
    return (record.published, record.title, content_words(record), record.provider_key)


def cluster(records: Iterable[Record], config: ClusteringConfig) -> Clustering:
    """Merge same-link records, then cluster copies of one story (see the module)."""
    records = list(records)
    found = cluster_briefs([brief_of(record) for record in records], records.__getitem__, config)
    return found.clustering(records.__getitem__)


def cluster_briefs(
    briefs: Sequence[Brief], record: Callable[[int], Record], config: ClusteringConfig
) -> Stories:
    """`cluster` from the records' briefs: `record(index)` makes the record of
    `briefs[index]`, asked only for the records of a link or a story that merges several."""
    first: dict[str, int] = {}  # guid -> its first record, in the order records came
    more: dict[str, list[int]] = {}  # guid -> every record, for links of several records
    for index, brief in enumerate(briefs):
        at = first.setdefault(brief.guid, index)
        if at != index:
            more.setdefault(brief.guid, [at]).append(index)
    links = {guid: merge_group([record(index) for index in indices])
             for guid, indices in more.items()}  # fmt: skip
    by_link = [briefs[index] if guid not in links else brief_of(links[guid])
               for guid, index in first.items()]  # fmt: skip
    # In the order the links came, as Clustering.members has always been.
    members = {guid: tuple(more[guid]) for guid in first if guid in more}
    ordered = sorted(by_link, key=lambda b: (b.published, b.guid))
    if not config.enabled or len(by_link) < 2:
        return Stories(by_link, dict(links), links, first, members,
                       sum(len(g) - 1 for g in members.values()),
                       tuple((brief, brief.guid) for brief in ordered))  # fmt: skip
    stories = []
    merged = {}
    leaders = [-1] * len(ordered)
    assign_leaders(ordered, config, leaders)
    # Only clusters of several stories are gathered: at a million stories, a list for
    # every story alone would cost about 100 MB at the build's peak.
    joined: dict[int, list[Brief]] = {}
    for position, leader in enumerate(leaders):
        if leader != position:
            joined.setdefault(leader, [ordered[leader]]).append(ordered[position])
    for position, leader in enumerate(leaders):  # clusters in the order they began
        if leader != position:
            continue
        lead = ordered[position]
        group = joined.get(position)
        if group is None:
            stories.append(lead)
            if lead.guid in links:
                merged[lead.guid] = links[lead.guid]
        else:
            story = merge_cluster([links.get(b.guid) or record(first[b.guid]) for b in group])
            stories.append(brief_of(story))
            merged[story.guid] = story
            members[story.guid] = tuple(
                index for b in group for index in more.get(b.guid) or (first[b.guid],)
            )
    duplicates = sum(len(group) - 1 for group in members.values())
    by_story = tuple((brief, ordered[leader].guid) for brief, leader in zip(ordered, leaders,
                                                                          strict=True))  # fmt: skip
    return Stories(stories, merged, links, first, members, duplicates, by_story)


def assign_leaders(
    ordered: list[Record] | list[Brief],
    config: ClusteringConfig,
    leaders: list[int],
    *,
    start: int = 0,
    last_changed: int | None = None,
    changed_at: float = float("-inf"),
    more: Callable[[], bool] | None = None,
) -> int:
    """Give each story of `ordered` (in time order) its cluster's first story, as a
    position in `leaders`; returns where it stopped.

    Stories before `start` keep the leaders given (an incremental build passes a
    window's worth of unchanged stories before its first change). From `start` on,
    `leaders` holds what the last build decided (-1 for stories new or changed); the
    work stops once past `last_changed` a whole window of stories has come out as
    before, because what a story decides depends only on the stories of the window
    before it: the rest would come out as before too. `changed_at` is the time of the
    last story removed (which is in no list but was in the last build's windows).
    `more`, when given, appends the next stories to `ordered` and `leaders` and says
    whether it found any.
    """
    window, cutoff = config.window_hours * 3600, config.title_similarity
    from rapidfuzz import fuzz

    ratio = fuzz.ratio
    texts: list[str] = []  # each story's sorted words: all that most comparisons need
    signatures: dict[int, Signature] = {}  # the few stories that pass the similarity
    times: list[float] = []
    members_of: dict[int, list[int]] = {}  # leader position -> its stories, by position
    # hash of a word pair -> positions of the stories using it, in time order: read from
    # the end back to the window's start, so nothing needs pruning. Hashes and arrays
    # keep it small (a collision only adds a candidate, which the similarity rejects).
    index: dict[int, array[int]] = {}
    final = len(ordered) - 1 if last_changed is None else last_changed
    mismatch = changed_at  # the time of the last story that came out otherwise

    def sig(position: int) -> Signature:
        found = signatures.get(position)
        if found is None:
            found = signatures[position] = signature(ordered[position])
        return found

    # This runs for every story of a full build: the names it uses are looked up once.
    find, add_text, add_time = index.get, texts.append, times.append
    position = 0
    forgotten = 0  # the stories before this one have left the window: their state is gone
    while position < len(ordered) or (more is not None and more()):
        record = ordered[position]
        now, words = record.published.timestamp(), content_words(record)
        text = " ".join(sorted(words))
        if position >= start and position > final and now - window > mismatch:
            return position  # a window as before past the last change: settled
        if position and not position % FORGET_EVERY:
            forgotten = _forget(now - window, forgotten, times, texts, index, members_of,
                                signatures)  # fmt: skip
        add_text(text)
        add_time(now)
        pairs = set(map(hash, pairwise(words))) if len(words) > 1 else set(map(hash, words))
        deciding = position >= start and text
        scores: dict[int, float] = {}  # leader -> its cluster's best match with this story
        for pair in pairs:
            posting = find(pair)
            if posting is None:
                index[pair] = array("l", (position,))
                continue
            # Most pairs were last used before the window: nothing to read back.
            if deciding and now - times[posting[-1]] <= window:
                for earlier in islice(reversed(posting), MAX_CANDIDATES_PER_PAIR):
                    if now - times[earlier] > window:
                        break
                    group = leaders[earlier]
                    if now - times[group] > window:
                        continue
                    score = ratio(text, texts[earlier], score_cutoff=cutoff)
                    if score > scores.get(group, 0.0) and _may_be_one(
                        record, sig(position), ordered[earlier], sig(earlier)
                    ):
                        scores[group] = score
            posting.append(position)
        if position >= start:
            best = position
            # The best match first; a cluster any of whose stories is the same template
            # filled otherwise is not joined (one copy must not chain in another story).
            for group in sorted(scores, key=lambda g: (-scores[g], g)) if scores else ():
                if not any(templated_apart(sig(position), sig(m), record.title, ordered[m].title)
                           for m in members_of[group]):  # fmt: skip
                    best = group
                    break
            if leaders[position] != best:
                mismatch = now
                leaders[position] = best
        leader = leaders[position]
        members = members_of.get(leader)
        if members is None:
            members_of[leader] = [position]
        else:
            members.append(position)
        position += 1
    return position


def _forget(
    oldest: float,
    forgotten: int,
    times: list[float],
    texts: list[str],
    index: dict[int, array[int]],
    members_of: dict[int, list[int]],
    signatures: dict[int, Signature],
) -> int:
    """Let go of what `assign_leaders` keeps for the stories before `oldest` (times are
    in order, and `now` only grows): no later story reads them. Their texts, their
    clusters' members, their signatures, the word pairs last used by them, and of every
    pair's stories all but the last MAX_CANDIDATES_PER_PAIR, the most a story reads.
    A story's time is kept: it says that its cluster's first story is out of the window.
    Returns the first story still in the window (the stories are walked, not bisected:
    only a run of stories all out of the window is let go)."""
    first = forgotten
    while first < len(times) and times[first] < oldest:
        texts[first] = ""
        first += 1
    for position in [p for p in members_of if p < first]:
        del members_of[position]
    for position in [p for p in signatures if p < first]:
        del signatures[position]
    for pair in [pair for pair, posting in index.items() if posting[-1] < first]:
        del index[pair]
    for posting in index.values():
        if len(posting) > 2 * MAX_CANDIDATES_PER_PAIR:
            del posting[: -MAX_CANDIDATES_PER_PAIR]
    return first


def merge_cluster(group: list[Record]) -> Record:
    """One record for a cluster (its stories in time order): the identity's guid and
    dates, the representative's text, every topic, and the others as copies."""
    identity = group[0]
    ordered = sorted(group, key=preference)
    best = ordered[0]
    links = {record.url for record in group} | {record.guid for record in group}
    return replace(
        best,
        guid=identity.guid,
        published=identity.published,
        updated=identity.updated,
        quality=max(r.quality for r in group),
        heat=max(r.heat for r in group),
        topics=union_topics(topic for r in ordered for topic in r.topics),
        images=next((r.images for r in ordered if r.images), ()),
        related=tuple(r for r in unique_related(ordered) if r.url not in links),
        excerpt=next((r.excerpt for r in ordered if r.excerpt), ""),
        copies=tuple(_copy(record) for record in group if record is not best),
    )


def _copy(record: Record) -> Related:
    provider = record.provider.name if record.provider else record.guid.split("/")[2]
    return Related(record.title, record.url, provider)


def outlets(story: Record) -> int:
    """How many providers cover the story: its own and those of its copies."""
    names = {story.provider.name.casefold() if story.provider else story.guid.split("/")[2]}
    names.update((copy.provider or copy.url.split("/")[2]).casefold() for copy in story.copies)
    return len(names)
