"""merge: records with the same canonical link become one story."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import load_config
from aggregator.merge import merge_duplicates
from aggregator.pipeline import build

from .factories import fields, make_record, write_config, write_record

LINK = "https://www.example.org/2026/11/big-story"


def copies():
    """The same article filed three times, on different days, with different links and data."""
    return [
        make_record(
            1,
            webUrl=LINK + "/?utm_source=newsletter",
            title="Big story (newsletter copy)",
            publishedDateTime="2026-11-12T09:00:00Z",
            quality=60,
            heat=90,
            topics=["AI", "Policy"],
            excerpt="Newsletter excerpt.",
        ),
        make_record(
            2,
            webUrl="HTTPS://WWW.EXAMPLE.ORG/2026/11/big-story#comments",
            title="Big story",
            publishedDateTime="2026-11-10T09:00:00Z",
            quality=80,
            heat=40,
            topics=["ai", "Regulation"],
            excerpt="Best excerpt.",
            related=[{"title": "Other take", "webUrl": "https://other.example/take"}],
        ),
        make_record(
            3,
            webUrl=LINK,
            title="Big story (late copy)",
            publishedDateTime="2026-11-14T09:00:00Z",
            quality=10,
            heat=137,
            topics=["Policy"],
            excerpt="",
            related=[{"title": "Other take again", "webUrl": "https://other.example/take"}],
        ),
    ]


def test_same_canonical_link_becomes_one_story() -> None:
    stories, duplicates = merge_duplicates([*copies(), make_record(9)])
    assert duplicates == 2
    assert len(stories) == 2
    [story] = [s for s in stories if s.guid == LINK]
    assert story.published == datetime(2026, 11, 10, 9, tzinfo=UTC)  # earliest
    assert story.quality == 80  # highest
    assert story.heat == 100  # highest (137 clamped)
    assert story.topics == ("ai", "Regulation", "Policy")  # union, best copy first
    assert story.title == "Big story"  # text from the best-rated copy
    assert story.excerpt == "Best excerpt."
    assert [r.url for r in story.related] == ["https://other.example/take"]
    assert story.updated == datetime(2026, 11, 14, 9, tzinfo=UTC)


def test_merge_does_not_depend_on_input_order() -> None:
    results = {tuple(merge_duplicates(order)[0]) for order in itertools.permutations(copies())}
    assert len(results) == 1


def test_distinct_links_are_not_merged() -> None:
    stories, duplicates = merge_duplicates([make_record(1), make_record(2), make_record(3)])
    assert (len(stories), duplicates) == (3, 0)


def test_excerpt_and_image_come_from_the_best_copy_that_has_them() -> None:
    worse = make_record(1, webUrl=LINK, quality=20, images=["https://img.example/a.jpg"])
    better = make_record(2, webUrl=LINK, quality=90, excerpt=None, images=None)
    [story], _ = merge_duplicates([worse, better])
    assert story.excerpt == "What happened in story 1."
    assert [image.url for image in story.images] == ["https://img.example/a.jpg"]


def test_build_counts_duplicates_across_files(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_record(records, "a.md", fields(1, webUrl=LINK + "/"))
    write_record(records, "b.md", fields(2, webUrl=LINK + "?utm_campaign=x"))
    write_record(records, "c.md", fields(3))
    report = build(load_config(write_config(tmp_path, ["records"])), write=False)
    assert (report.records, report.duplicates, report.items) == (3, 1, 2)
