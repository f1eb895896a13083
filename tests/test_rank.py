"""rank: the score, the order, the caps, and independence from the time of the build."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time

from aggregator.build import build
from aggregator.config import RankingConfig, load_config
from aggregator.rank import plan_feeds, rank, score, select

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
