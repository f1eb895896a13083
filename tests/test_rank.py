"""rank: the score, the order, the caps, and independence from the time of the build."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
from freezegun import freeze_time

from aggregator.config import RankingConfig, load_config
from aggregator.model import Related
from aggregator.pipeline import build
from aggregator.rank import (
    StoryKey,
    choose,
    plan_feeds,
    rank,
    rank_stories,
    rerank,
    score,
    score_parts,
    scored,
    select,
)

from .factories import fields, make_record, tree_bytes, write_config, write_record

RANKING = RankingConfig()
DAY0 = datetime(2026, 11, 10, tzinfo=UTC)  # midnight: whole days divide exactly


def at(hours: float) -> str:
    return (DAY0 + timedelta(hours=hours)).isoformat()


def titles(records) -> list[str]:
    return [r.title for r in records]


def test_score_formula() -> None:
    record = make_record(1, quality=30, heat=33, publishedDateTime=at(0))
    expected = math.log2(1 + 30 + 33) + DAY0.timestamp() / (24 * 3600)
    assert score(record, RANKING) == expected


def test_better_story_ranks_first_at_the_same_time() -> None:
    low = make_record(1, title="low", quality=10, heat=10, publishedDateTime=at(0))
    high = make_record(2, title="high", quality=90, heat=80, publishedDateTime=at(0))
    mid = make_record(3, title="mid", quality=50, heat=40, publishedDateTime=at(0))
    assert titles(rank([low, high, mid], RANKING)) == ["high", "mid", "low"]


def test_both_quality_and_heat_count() -> None:
    base = make_record(1, title="base", quality=50, heat=50, publishedDateTime=at(0))
    hotter = make_record(2, title="hotter", quality=50, heat=60, publishedDateTime=at(0))
    better = make_record(3, title="better", quality=65, heat=50, publishedDateTime=at(0))
    assert titles(rank([base, hotter, better], RANKING)) == ["better", "hotter", "base"]
    heat_only = RankingConfig(quality_weight=0.0, heat_weight=1.0)
    assert titles(rank([base, hotter, better], heat_only))[0] == "hotter"


def test_fresh_news_beats_old_news_of_the_same_worth() -> None:
    old = make_record(1, title="old", quality=70, heat=70, publishedDateTime=at(0))
    new = make_record(2, title="new", quality=70, heat=70, publishedDateTime=at(1))
    assert titles(rank([old, new], RANKING)) == ["new", "old"]


def test_doubling_hours_newer_equals_twice_the_worth() -> None:
    # 1 + 63 = 2 x (1 + 31): one day newer makes up exactly for half the worth.
    ranking = RankingConfig(quality_weight=1.0, heat_weight=0.0, doubling_hours=24)
    good_old = make_record(1, title="good-old", quality=63, publishedDateTime=at(0))
    half_new = make_record(2, title="half-new", quality=31, publishedDateTime=at(24))
    assert score(good_old, ranking) == score(half_new, ranking)
    # Equal scores: newer first.
    assert titles(rank([good_old, half_new], ranking)) == ["half-new", "good-old"]
    much_better_old = make_record(3, title="much-better", quality=70, publishedDateTime=at(0))
    assert titles(rank([half_new, much_better_old], ranking))[0] == "much-better"


def test_ties_are_broken_deterministically() -> None:
    twins = [
        make_record(n, title=f"twin-{n}", quality=50, heat=50, publishedDateTime=at(0))
        for n in range(1, 6)
    ]
    orders = {tuple(titles(rank(p, RANKING))) for p in itertools.permutations(twins)}
    assert len(orders) == 1
    [order] = orders
    assert list(order) == [r.title for r in sorted(twins, key=lambda r: r.guid)]


def test_max_items_caps_every_feed() -> None:
    records = [make_record(n, quality=n, publishedDateTime=at(0)) for n in range(1, 11)]
    plans, _ = plan_feeds(records, RankingConfig(), max_items=4)
    for plan in plans:
        assert titles(plan.items) == [f"Story number {n}" for n in (10, 9, 8, 7)]
        assert plan.total == 10


def test_max_per_provider_lets_others_in() -> None:
    wire = {"name": "Wire", "domain": "wire.example"}
    flood = [
        make_record(n, title=f"wire-{n}", provider=wire, quality=90, publishedDateTime=at(0))
        for n in range(1, 6)
    ]
    others = [
        make_record(n, title=f"other-{n}", quality=10, publishedDateTime=at(0)) for n in (6, 7)
    ]
    ranked = rank([*flood, *others], RANKING)
    capped = RankingConfig(max_per_provider=2, provider_penalty=0)
    chosen = select(ranked, max_items=50, ranking=capped)
    assert sorted(titles(chosen)) == ["other-6", "other-7", "wire-1", "wire-2"]
    assert titles(select(ranked, max_items=3, ranking=capped))[2].startswith("other-")


def test_provider_key_falls_back_to_name_then_host() -> None:
    by_name = [
        make_record(n, provider={"name": "Same Desk"}, webUrl=f"https://h{n}.example/x")
        for n in (1, 2)
    ]
    by_host = [make_record(n, provider=None, webUrl=f"https://host.example/{n}") for n in (3, 4)]
    assert {r.provider_key for r in by_name} == {"same desk"}
    assert {r.provider_key for r in by_host} == {"host.example"}
    one_each = RankingConfig(max_per_provider=1)
    chosen = select(rank([*by_name, *by_host], RANKING), max_items=10, ranking=one_each)
    assert len(chosen) == 2


def test_order_does_not_depend_on_input_order() -> None:
    records = [
        make_record(n, quality=random.Random(n).randint(0, 100), publishedDateTime=at(n % 7))
        for n in range(1, 30)
    ]
    expected = titles(rank(records, RANKING))
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert titles(rank(shuffled, RANKING)) == expected


def test_score_and_output_do_not_depend_on_when_the_build_runs(tmp_path: Path) -> None:
    records = tmp_path / "records"
    for n in range(1, 13):
        data = fields(n, quality=(n * 37) % 101, heat=(n * 53) % 140, topics=[f"T{n % 3}"])
        write_record(records, f"r{n}.md", data)
    config = load_config(write_config(tmp_path, ["records"]))
    outputs = []
    for moment in ("2019-01-01 00:00:00", "2026-11-20 12:00:00", "2040-06-30 23:59:59"):
        with freeze_time(moment):
            assert datetime.now(UTC).year == int(moment[:4])  # the clock really moved
            output = tmp_path / f"out-{moment[:4]}"
            build(config, output)
            outputs.append(tree_bytes(output))
    assert sum(name.endswith(("rss.xml", "atom.xml")) for name in outputs[0]) == 2 + 2 * 3
    assert outputs[0] == outputs[1] == outputs[2]


# --- diversity without starvation ---------------------------------------------------------------


def flood_and_others(flood: int, others: int) -> list:
    wire = {"name": "Wire", "domain": "wire.example"}
    return [
        *(make_record(n, title=f"wire-{n}", provider=wire, quality=90, heat=90,
                      publishedDateTime=at(n % 5)) for n in range(1, flood + 1)),
        *(make_record(100 + n, title=f"other-{n}", quality=40, heat=40,
                      publishedDateTime=at(n % 5)) for n in range(1, others + 1)),
    ]  # fmt: skip


def test_a_provider_that_files_nearly_everything_does_not_starve_the_feed() -> None:
    records = flood_and_others(flood=40, others=3)
    [everything, *_] = plan_feeds(records, RANKING, max_items=20)[0]
    assert len(everything.items) == 20  # full: the penalty never leaves a slot empty
    chosen = titles(everything.items)
    assert sum(t.startswith("wire-") for t in chosen) == 17  # its best stories still show
    assert {t for t in chosen if t.startswith("other-")} == {"other-1", "other-2", "other-3"}


def test_a_mixed_feed_shows_many_providers() -> None:
    records = [
        make_record(n, title=f"s{n}", quality=90 - 6 * (n % 8), heat=50,
                    provider={"name": f"P{n % 8}", "domain": f"p{n % 8}.example"},
                    publishedDateTime=at(0))
        for n in range(1, 81)
    ]  # fmt: skip
    [plan, *_] = plan_feeds(records, RANKING, max_items=16)[0]
    assert len({r.provider_key for r in plan.items}) == 8
    unpenalised = plan_feeds(records, RankingConfig(provider_penalty=0), max_items=16)[0][0]
    assert len({r.provider_key for r in unpenalised.items}) < 8


def test_the_penalty_is_paid_per_earlier_item_of_the_same_provider() -> None:
    records = flood_and_others(flood=3, others=1)
    ranked = scored(records, RANKING)
    choices = choose(ranked, 4, RANKING)
    wire = [c.penalty for c in choices if c.record.title.startswith("wire-")]
    assert wire == [0.0, 0.5, 1.0]
    assert [c.penalty for c in choices if c.record.title.startswith("other-")] == [0.0]


def test_max_per_provider_is_an_optional_hard_cap() -> None:
    records = flood_and_others(flood=10, others=2)
    capped = RankingConfig(max_per_provider=3)
    [plan, *_] = plan_feeds(records, capped, max_items=10)[0]
    assert len(plan.items) == 5  # 3 from Wire, the 2 others: the cap leaves slots empty
    assert RankingConfig().max_per_provider == 0  # off by default


def test_a_story_several_outlets_cover_ranks_higher() -> None:
    alone = make_record(1, title="alone", quality=60, heat=60, publishedDateTime=at(0))
    covered = make_record(2, title="covered", quality=55, heat=55, publishedDateTime=at(0))
    covered = replace(covered, copies=(Related("copy", "https://c.example/x", "C Outlet"),))
    assert titles(rank([alone, covered], RANKING)) == ["covered", "alone"]
    no_weight = RankingConfig(coverage_weight=0)
    assert titles(rank([alone, covered], no_weight)) == ["alone", "covered"]
    parts = score_parts(covered, RANKING)
    assert parts.coverage == 0.5 and score(covered, RANKING) == parts.total


def test_a_topic_can_have_its_own_max_items_title_and_description_or_be_hidden(
    tmp_path: Path,
) -> None:
    records = tmp_path / "records"
    for n in range(1, 9):
        data = fields(n, topics=["AI", "Space"] if n % 2 else ["AI", "Robots"])
        write_record(records, f"r{n}.md", data)
    extra = (
        '[feeds.topics."ai"]\nmax_items = 3\ntitle = "Machine minds"\n'
        'description = "Only the best three."\n'
        '[feeds.topics.Robots]\nhidden = true\n'
    )
    config = load_config(write_config(tmp_path, ["records"], extra))
    build(config)
    output = config.site.output_dir
    ai = feedparser.parse((output / "topics/ai/rss.xml").read_bytes())
    assert len(ai.entries) == 3
    assert ai.feed.title == "Machine minds" and ai.feed.subtitle == "Only the best three."
    assert len(feedparser.parse((output / "rss.xml").read_bytes()).entries) == 8
    assert len(feedparser.parse((output / "topics/space/rss.xml").read_bytes()).entries) == 4
    assert not (output / "topics/robots").exists()
    opml = (output / "index.opml").read_text("utf-8")
    assert "Machine minds" in opml and "robots" not in opml.lower()
    assert "topics/robots/" not in (output / "index.html").read_text("utf-8")


def _random_key(rng: random.Random, guid: str) -> StoryKey:
    spellings = ["AI", "ai", "Climate", "Space", "Chips", "Health"]
    topics = tuple(rng.sample(spellings, rng.randint(0, 3)))
    # Few distinct scores and times, so that ties (broken by time, then guid) happen.
    return StoryKey(float(rng.randint(0, 5)), float(rng.randint(0, 3)), guid,
                    f"p{rng.randint(0, 3)}", topics)  # fmt: skip


def test_rerank_moves_what_changed_to_where_ranking_from_scratch_puts_it() -> None:
    """rerank (the changes path) gives the very lists rank_stories makes from every key:
    edits, additions and removals, ties, several spellings of one topic, emptied topics."""
    rng = random.Random(5)
    for _ in range(200):
        keys = {f"g{n:03d}": _random_key(rng, f"g{n:03d}") for n in range(rng.randint(0, 40))}
        rankings = rank_stories(keys.values())
        changes = []
        for guid in rng.sample(sorted(keys), min(len(keys), rng.randint(0, 6))):
            old = keys[guid]
            if rng.random() < 0.3:
                del keys[guid]
                changes.append((old, None))
            else:
                keys[guid] = _random_key(rng, guid)
                changes.append((old, keys[guid]))
        for n in range(rng.randint(0, 4)):
            guid = f"new{n}"
            keys[guid] = _random_key(rng, guid)
            changes.append((None, keys[guid]))
        rerank(rankings, changes, keys.__getitem__)
        fresh = rank_stories(keys.values())
        assert (rankings.order, rankings.by_topic, rankings.spellings) == (
            fresh.order, fresh.by_topic, fresh.spellings
        )  # fmt: skip
