"""`aggregator explain`: why a feed holds what it holds, and what became of a record.

It runs the build's own stages (read, filter, cluster, rank, choose) without writing
anything, and reports what they decided: nothing here re-decides. Two questions:

- a feed (`--topic NAME`, or the all-topics feed): every item with its rank, its score
  and the parts of the score, the diversity penalty it paid, and its cluster's copies;
- a link or a record file: rejected (why), unpublished, filtered (which rule), merged
  into which story, ranked N in which feeds, cut by `max_items`, or pushed out by the
  diversity penalty.

Scores are shown relative to the feed's newest story: `recency` is -1 for a story one
`doubling_hours` older than it, so the parts add up to the score that orders the feed
and none of them depends on when you ask.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from aggregator.collect import Collection, collect
from aggregator.config import Config
from aggregator.curate import Curation, curate
from aggregator.errors import AggregatorError, ConfigError
from aggregator.filters import first_match
from aggregator.model import Record
from aggregator.parse.documents import bytes_to_text, kind_for_suffix, parse_document
from aggregator.rank import Choice, Topic, choose, feed_candidates, score_parts
from aggregator.sources.files import find_files
from aggregator.sources.folder import RECORD_SUFFIXES
from aggregator.topics import topic_key
from aggregator.urls import canonical_url, normalise_url


@dataclass(frozen=True, slots=True)
class Score:
    """A story's score in one feed, part by part."""

    quality: float
    heat: float
    worth: float  # log2(1 + quality_weight * quality + heat_weight * heat)
    coverage: float  # coverage_weight * log2(outlets)
    recency: float  # doublings before the feed's newest story (0 or less)
    penalty: float  # the diversity penalty it paid (or would pay next)
    total: float  # worth + coverage + recency - penalty


@dataclass(frozen=True, slots=True)
class Copy:
    provider: str | None
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Item:
    rank: int | None  # 1 = the top of the feed; None when not in it
    guid: str
    title: str
    url: str
    provider: str
    published: str
    score: Score | None  # None where no one feed is meant (a record's story)
    copies: tuple[Copy, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedReport:
    feed: str  # the topic's name, or "all topics"
    slug: str | None
    stories: int  # stories the feed could show (after its filters)
    max_items: int
    items: tuple[Item, ...]
    next_out: tuple[Item, ...] = ()  # the best stories left out, with their scores


@dataclass(frozen=True, slots=True)
class Placement:
    """What one feed did with a story."""

    feed: str
    slug: str | None
    fate: str  # "ranked", "cut by max_items", "pushed out by the diversity penalty", ...
    rank: int | None = None
    rule: str | None = None  # the [[filters]] rule, when filtered
    score: Score | None = None


@dataclass(frozen=True, slots=True)
class RecordReport:
    target: str
    fate: str  # rejected, unpublished, filtered, not found, or in feeds
    details: tuple[str, ...] = ()  # what the sources said of it (problems, rule)
    story: Item | None = None  # the story it is part of
    merged_into: str | None = None  # the story's guid when the record is another copy
    feeds: tuple[Placement, ...] = field(default_factory=tuple)


class Explainer:
    """The decisions of one build over `config`'s records, to be asked about."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.collection: Collection = collect(config, persist=False)
        self.curated: Curation = curate(config, self.collection)
        self.topics, self._feeds = feed_candidates(self.curated.clustering.stories,
                                                   config.ranking)  # fmt: skip

    # --- a feed ---------------------------------------------------------------------------

    def feed(self, topic: str | None, *, left_out: int = 5) -> FeedReport:
        found = self._topic(topic)
        entries = self._filtered(found)
        max_items = self._limit(found)
        choices = choose(entries, max_items, self.config.ranking)
        newest = _newest(entries)
        items = tuple(self._item(c.record, newest, c.penalty, rank)
                      for rank, c in enumerate(choices, start=1))  # fmt: skip
        chosen = {c.record.guid for c in choices}
        out = [(value, r) for value, r in entries if r.guid not in chosen][:left_out]
        penalties = _penalties(choices, self.config.ranking.provider_penalty)
        next_out = tuple(self._item(r, newest, penalties.get(r.provider_key, 0.0), None)
                         for _, r in out)  # fmt: skip
        return FeedReport(_feed_name(found), found.slug if found else None, len(entries),
                          max_items, items, next_out)  # fmt: skip

    def _limit(self, topic: Topic | None) -> int:
        """The feed's max_items: its own ([feeds.topics]) or the site's."""
        return self.config.feeds.limit_for(topic and topic.key, topic and topic.slug)

    def _topic(self, name: str | None) -> Topic | None:
        if name is None:
            return None
        wanted = topic_key(name)
        for topic in self.topics.values():
            if wanted in (topic.key, topic.slug):
                return topic
        known = ", ".join(sorted(t.name for t in self.topics.values())[:20])
        raise ConfigError(str(self.config.path), "--topic",
                          f"no topic {name!r}; topics: {known}")  # fmt: skip

    def _filtered(self, topic: Topic | None) -> list[tuple[float, Record]]:
        key = None if topic is None else topic.key
        entries = next(e for t, e in self._feeds if (t.key if t else None) == key)
        rules = self.curated.rules.for_feed(key, topic.slug if topic else None)
        if not rules:
            return entries
        return [entry for entry in entries if first_match(rules, entry[1]) is None]

    def _item(self, record: Record, newest: float, penalty: float, rank: int | None) -> Item:
        ranking = self.config.ranking
        parts = score_parts(record, ranking)
        doubling = ranking.doubling_hours * 3600
        recency = (record.published.timestamp() - newest) / doubling
        total = parts.worth + parts.coverage + recency - penalty
        score = Score(record.quality, record.heat, parts.worth, parts.coverage, recency,
                      penalty, total)  # fmt: skip
        provider = record.provider.name if record.provider else record.guid.split("/")[2]
        copies = tuple(Copy(c.provider, c.title, c.url) for c in record.copies)
        return Item(rank, record.guid, record.title, record.url, provider,
                    record.published.isoformat(), score, copies)  # fmt: skip

    # --- a record -------------------------------------------------------------------------

    def record(self, target: str) -> RecordReport:
        path = Path(target)
        if path.exists():
            return self._file(path)
        if "://" not in target:
            raise ConfigError(str(self.config.path), "TARGET",
                              f"no such file {target!r}, and not an http(s) link")  # fmt: skip
        return self._link(target)

    def _file(self, path: Path) -> RecordReport:
        origin = os.path.abspath(path)
        problems = [p for p in self.collection.problems if os.path.abspath(p.origin) == origin]
        records = [r for r in self.collection.records if os.path.abspath(r.origin) == origin]
        filtered = [(r, rule) for r, rule in self.collection.filtered
                    if os.path.abspath(r.origin) == origin]  # fmt: skip
        details = tuple(str(p) for p in problems)
        if records:
            return self._placed(str(path), records[0], details)
        if filtered:
            rule = filtered[0][1]
            return RecordReport(str(path), "filtered", (*details, f"left out by {rule}"))
        if any(p.severity == "error" for p in problems):
            return RecordReport(str(path), "rejected", details)
        if _unpublished_in(path):
            return RecordReport(str(path), "unpublished", (*details, "published: false"))
        return RecordReport(str(path), "not found", (*details, "not a record file of any source"))

    def _link(self, target: str) -> RecordReport:
        try:
            wanted = canonical_url(normalise_url(target), self.config.records.tracking_params)
        except ValueError as exc:
            reason = f"expected a record file or an http(s) link: {exc}"
            raise ConfigError(str(self.config.path), "TARGET", reason) from None
        for record in self.collection.records:
            if record.guid == wanted:
                return self._placed(target, record, ())
        for record, rule in self.collection.filtered:
            if record.guid == wanted:
                return RecordReport(target, "filtered", (f"left out by {rule}",))
        for story in self.curated.clustering.stories:
            for copy in story.copies:
                if _canonical(copy.url, self.config) == wanted:
                    return self._placed(target, story, ())
        for problem in self.collection.problems:
            if problem.severity == "error" and target in str(problem):
                return RecordReport(target, "rejected", (str(problem),))
        for origin in self._unpublished_files(target):
            return RecordReport(target, "unpublished", (f"{origin}: published: false",))
        return RecordReport(target, "not found", ("no record of any source has this link",))

    def _unpublished_files(self, target: str) -> list[str]:
        host_path = target.split("://", 1)[-1].split("?")[0].rstrip("/")
        found = []
        for path, _ in find_files(self.config).files:
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if host_path and host_path in text and _unpublished_in(Path(path)):
                found.append(path)
        return found

    def _placed(self, target: str, record: Record, details: tuple[str, ...]) -> RecordReport:
        story, merged_into = self._story_of(record)
        placements = tuple(self._placements(story))
        item = replace(self._item(story, story.published.timestamp(), 0.0, None), score=None)
        fates = sorted({p.fate for p in placements})
        fate = "in feeds" if "ranked" in fates else (fates[0] if fates else "in no feed")
        return RecordReport(target, fate, details, item, merged_into, placements)

    def _story_of(self, record: Record) -> tuple[Record, str | None]:
        clustering = self.curated.clustering
        for story in clustering.stories:
            if story.guid == record.guid and not story.copies:
                return story, None
        for guid, members in clustering.members.items():
            if any(m is record or (m.guid == record.guid and m.origin == record.origin)
                   for m in members):  # fmt: skip
                story = next(s for s in clustering.stories if s.guid == guid)
                return story, None if story.url == record.url else guid
        return record, None

    def _placements(self, story: Record) -> list[Placement]:
        keys = {topic_key(name) for name in story.topics}
        placements = []
        for topic, entries in self._feeds:
            if topic is not None and topic.key not in keys:
                continue
            own = None if topic is None else self.config.feeds.for_topic(topic.key, topic.slug)
            if own is not None and own.hidden:
                continue  # no such feed
            name, slug = _feed_name(topic), topic.slug if topic else None
            rules = self.curated.rules.for_feed(topic.key if topic else None, slug)
            rule = first_match(rules, story) if rules else None
            if rule is not None:
                placements.append(Placement(name, slug, "filtered", rule=rule.description))
                continue
            kept = [e for e in entries if first_match(rules, e[1]) is None] if rules else entries
            placements.append(self._placement(name, slug, story, kept))
        return placements

    def _placement(
        self, name: str, slug: str | None, story: Record, entries: list[tuple[float, Record]]
    ) -> Placement:
        ranking = self.config.ranking
        max_items = self._limit(self.topics.get(topic_key(name)) if slug else None)
        choices = choose(entries, max_items, ranking)
        newest = _newest(entries)
        for rank, choice in enumerate(choices, start=1):
            if choice.record.guid == story.guid:
                score = self._item(story, newest, choice.penalty, rank).score
                return Placement(name, slug, "ranked", rank, score=score)
        position = next(i for i, (_, r) in enumerate(entries) if r.guid == story.guid)
        penalty = _penalties(choices, ranking.provider_penalty).get(story.provider_key, 0.0)
        score = self._item(story, newest, penalty, None).score
        counts = sum(1 for c in choices if c.record.provider_key == story.provider_key)
        if ranking.max_per_provider and counts >= ranking.max_per_provider:
            fate = f"cut by max_per_provider ({ranking.max_per_provider} from its provider)"
        elif position < max_items:
            fate = "pushed out by the diversity penalty"
        else:
            fate = f"cut by max_items ({max_items}): ranked {position + 1} by score"
        return Placement(name, slug, fate, None, score=score)


def _penalties(choices: Sequence[Choice], penalty: float) -> dict[str, float]:
    """What the next story of each provider would pay, after these choices."""
    counts: dict[str, int] = {}
    for choice in choices:
        key = choice.record.provider_key
        counts[key] = counts.get(key, 0) + 1
    return {key: penalty * count for key, count in counts.items()}


def _newest(entries: Sequence[tuple[float, Record]]) -> float:
    return max((r.published.timestamp() for _, r in entries), default=0.0)


def _feed_name(topic: Topic | None) -> str:
    return "all topics" if topic is None else topic.name


def _canonical(url: str, config: Config) -> str:
    try:
        return canonical_url(normalise_url(url), config.records.tracking_params)
    except ValueError:
        return url


def _unpublished_in(path: Path) -> bool:
    """Whether the file holds a record that says `published: false`."""
    try:
        text = bytes_to_text(path.read_bytes())
        if path.suffix.lower() not in RECORD_SUFFIXES:
            return False
        raw = parse_document(text, kind_for_suffix(path.suffix))
    except (OSError, AggregatorError, ValueError):  # unreadable: it holds no such record
        return False
    return any(isinstance(item.data, dict) and item.data.get("published") is False for item in raw)


# --- output --------------------------------------------------------------------------------


def as_json(report: FeedReport | RecordReport) -> str:
    return json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n"


def feed_text(report: FeedReport) -> str:
    lines = [
        f"{report.feed}: {len(report.items)} items of {report.stories} stories "
        f"(max_items {report.max_items})",
        "rank   score = worth + coverage + recency - penalty  provider / title",
    ]
    for item in report.items:
        lines.extend(_item_lines(item))
    if report.next_out:
        lines.append("next left out:")
        for item in report.next_out:
            lines.extend(_item_lines(item))
    return "\n".join(lines) + "\n"


def _item_lines(item: Item) -> list[str]:
    s = item.score
    assert s is not None  # a feed's items always carry their score
    rank = f"{item.rank:4}" if item.rank else "   -"
    lines = [
        f"{rank} {s.total:7.2f} = {s.worth:5.2f} + {s.coverage:4.2f} + {s.recency:7.2f} - "
        f"{s.penalty:4.2f}   {item.provider}: {item.title}",
        f"{'':8}quality {s.quality:g}, heat {s.heat:g}; {item.url}",
    ]
    lines.extend(f"{'':8}also: {c.provider or '?'}: {c.url}" for c in item.copies)
    return lines


def record_text(report: RecordReport) -> str:
    lines = [f"{report.target}: {report.fate}"]
    lines.extend(f"  {detail}" for detail in report.details)
    if report.story is not None:
        story = report.story
        if report.merged_into:
            lines.append(f"  merged into the story {report.merged_into}: {story.title!r}")
        else:
            lines.append(f"  story: {story.title!r} ({story.guid})")
        for copy in story.copies:
            lines.append(f"  copy: {copy.provider or '?'}: {copy.url}")
    for place in report.feeds:
        where = place.feed if place.slug is None else f"{place.feed} (topics/{place.slug})"
        if place.fate == "ranked":
            lines.append(f"  {where}: ranked {place.rank}, score {place.score.total:.2f}"
                         if place.score else f"  {where}: ranked {place.rank}")  # fmt: skip
        elif place.rule:
            lines.append(f"  {where}: filtered by {place.rule}")
        else:
            score = f", score {place.score.total:.2f}" if place.score else ""
            lines.append(f"  {where}: {place.fate}{score}")
    return "\n".join(lines) + "\n"
