"""Score records, order them, and choose the items of each feed.

score = log2(1 + quality_weight * quality + heat_weight * heat)
        + published_seconds / (doubling_hours * 3600)

A story `doubling_hours` newer counts as much as one twice as good and hot. The score
depends only on the records, never on when the build runs, so every cron run gives the
same order. Ties: newer first, then by guid.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aggregator.config import RankingConfig
from aggregator.records import Record
from aggregator.topics import assign_slugs, commonest, display_names, topic_key


@dataclass(frozen=True, slots=True)
class Topic:
    key: str
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One feed to write: `topic` is None for the all-topics feed."""

    topic: Topic | None
    items: tuple[Record, ...]
    total: int  # records in this topic before the caps

    @property
    def directory(self) -> str:
        """Where the feed lives, relative to the output folder ("" for the all-topics feed)."""
        return "" if self.topic is None else f"topics/{self.topic.slug}"


def score(record: Record, ranking: RankingConfig) -> float:
    worth = ranking.quality_weight * record.quality + ranking.heat_weight * record.heat
    return math.log2(1.0 + worth) + record.published.timestamp() / (ranking.doubling_hours * 3600)


def rank(records: Iterable[Record], ranking: RankingConfig) -> list[Record]:
    """Best first; deterministic for equal scores."""
    # score() inlined: this runs for every record of every build.
    quality, heat = ranking.quality_weight, ranking.heat_weight
    doubling = ranking.doubling_hours * 3600
    log2 = math.log2

    def order(record: Record) -> tuple[float, float, str]:
        published = record.published.timestamp()
        worth = quality * record.quality + heat * record.heat
        return -(log2(1.0 + worth) + published / doubling), -published, record.guid

    return sorted(records, key=order)


def select(ranked: Sequence[Record], max_items: int, max_per_provider: int) -> tuple[Record, ...]:
    """Take items in rank order, at most `max_per_provider` from any one provider."""
    chosen: list[Record] = []
    per_provider: Counter[str] = Counter()
    for record in ranked:
        key = record.provider_key
        if per_provider[key] >= max_per_provider:
            continue
        per_provider[key] += 1
        chosen.append(record)
        if len(chosen) == max_items:
            break
    return tuple(chosen)


def topics_of(records: Sequence[Record]) -> dict[str, Topic]:
    """Every topic key with its display name and slug."""
    names = display_names(topic for record in records for topic in record.topics)
    slugs = assign_slugs(names)
    return {key: Topic(key, names[key], slugs[key]) for key in sorted(names)}


def plan_feeds(
    records: Sequence[Record], ranking: RankingConfig, max_items: int
) -> tuple[list[FeedPlan], dict[str, Topic]]:
    """The all-topics feed first, then one feed per topic in slug order."""
    ranked = rank(records, ranking)
    topics = topics_of(ranked)
    members: dict[str, list[Record]] = {key: [] for key in topics}
    for record in ranked:
        for name in record.topics:
            members[topic_key(name)].append(record)
    plans = [FeedPlan(None, select(ranked, max_items, ranking.max_per_provider), len(ranked))]
    for topic in sorted(topics.values(), key=lambda t: t.slug):
        items = members[topic.key]
        plans.append(
            FeedPlan(topic, select(items, max_items, ranking.max_per_provider), len(items))
        )
    return plans, topics


def extend_plans(
    previous: Sequence[FeedPlan],
    spellings: dict[str, dict[str, int]],
    new: Sequence[Record],
    ranking: RankingConfig,
    max_items: int,
) -> tuple[list[FeedPlan], dict[str, Topic], dict[str, dict[str, int]]] | None:
    """The plans `plan_feeds` would make for the earlier stories plus `new` (none of
    them a duplicate of an earlier story), from the earlier plans alone; or None when
    the new stories change how an existing topic is shown (its spelling or slug).

    Choosing is greedy in rank order with a per-provider cap, so adding stories can
    only push chosen items out, never bring back one that was left out: the new
    choice is the choice over the earlier chosen items and the new stories.
    """
    counts = {key: dict(names) for key, names in spellings.items()}
    for record in new:
        for name in record.topics:
            names = counts.setdefault(topic_key(name), {})
            names[name] = names.get(name, 0) + 1
    shown, slugs = commonest(counts), assign_slugs(counts)
    topics = {key: Topic(key, shown[key], slugs[key]) for key in sorted(shown)}
    earlier = {plan.topic.key if plan.topic else None: plan for plan in previous}
    if any(plan.topic and plan.topic != topics[plan.topic.key] for plan in previous):
        return None
    added: dict[str | None, list[Record]] = {None: list(new)}
    for record in new:
        for name in record.topics:
            added.setdefault(topic_key(name), []).append(record)
    plans = []
    for key in [None, *sorted(topics, key=lambda key: topics[key].slug)]:
        old, extra = earlier.get(key), added.get(key, [])
        if old is not None and not extra:
            plans.append(old)
            continue
        candidates = rank([*(old.items if old else ()), *extra], ranking)
        total = (old.total if old else 0) + len(extra)
        topic = None if key is None else topics[key]
        plans.append(
            FeedPlan(topic, select(candidates, max_items, ranking.max_per_provider), total)
        )
    return plans, topics, counts
