"""topics: one topic per case-insensitive name, its display spelling, and safe unique slugs."""

from __future__ import annotations

import re
from pathlib import Path

import feedparser
import pytest

from aggregator.config import load_config
from aggregator.pipeline import build
from aggregator.topics import MAX_SLUG_LENGTH, assign_slugs, display_names, topic_key

from .factories import feed_paths, fields, write_config, write_record

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def test_names_differing_in_case_and_spacing_are_one_topic() -> None:
    assert topic_key("AI") == topic_key("ai") == topic_key(" AI ") == "ai"
    assert topic_key("Machine  Learning") == topic_key("machine learning")
    assert topic_key("AI") != topic_key("A I")


def test_most_common_spelling_is_shown() -> None:
    names = ["AI", "ai", "AI", "Ai", "machine learning", "Machine Learning", "Machine Learning"]
    assert display_names(names) == {"ai": "AI", "machine learning": "Machine Learning"}


def test_spelling_ties_are_decided_the_same_way_every_time() -> None:
    assert display_names(["iOS", "IOS"]) == display_names(["IOS", "iOS"]) == {"ios": "IOS"}


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("AI", "ai"),
        ("Machine Learning", "machine-learning"),
        ("Künstliche Intelligenz", "kunstliche-intelligenz"),
        ("Искусственный интеллект", "iskusstvennyi-intellekt"),
        ("人工智能", "ren-gong-zhi-neng"),
        ("Café & Crème", "cafe-creme"),
        ("  Climate   Tech  ", "climate-tech"),
    ],
)
def test_slugs_are_transliterated_lowercase_ascii(name: str, slug: str) -> None:
    assert assign_slugs([topic_key(name)]) == {topic_key(name): slug}


def test_colliding_slugs_get_unique_suffixes() -> None:
    keys = [topic_key(n) for n in ("C++", "C", "C#", "c!")]
    slugs = assign_slugs(keys)
    assert len(set(slugs.values())) == len(keys)
    assert slugs["c"] == "c"  # the key that sorts first keeps the plain slug
    assert all(SLUG.match(s) for s in slugs.values())
    assert all(s.startswith("c-") for key, s in slugs.items() if key != "c")


def test_slugs_are_stable_whatever_the_order() -> None:
    keys = [topic_key(n) for n in ("Robotics", "robotics!", "Space", "AI", "C++", "C")]
    assert assign_slugs(keys) == assign_slugs(reversed(keys)) == assign_slugs(sorted(keys))


def test_a_suffixed_slug_never_collides_with_a_plain_one() -> None:
    first = assign_slugs(["c", "c."])
    lookalike = first["c."]  # "c-<hash>", now also a topic of its own, which sorts before "c."
    assert lookalike < "c."
    slugs = assign_slugs(["c", "c.", lookalike])
    assert slugs[lookalike] == lookalike
    assert len(set(slugs.values())) == 3


HOSTILE = [
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "a/b",
    "..\\..\\windows",
    "~root",
    "%2e%2e%2f",
    "!!!",
    "🤖",
    "topic",
    "con",
    "x" * 500,
    "\u202eevil",
]


def test_slugs_never_leave_the_output_folder(tmp_path: Path) -> None:
    slugs = assign_slugs(topic_key(n) for n in HOSTILE)
    assert len(set(slugs.values())) == len(slugs)
    for slug in slugs.values():
        assert SLUG.match(slug), slug
        assert "/" not in slug and ".." not in slug and "\\" not in slug
        assert len(slug) <= MAX_SLUG_LENGTH + 1 + 40
        folder = (tmp_path / "topics" / slug).resolve()
        assert folder.parent == (tmp_path / "topics").resolve()


def test_build_merges_spellings_into_one_feed_named_by_the_commonest(tmp_path: Path) -> None:
    records = tmp_path / "records"
    spellings = ["AI", " ai ", "AI", "Ai", "../../escape"]
    for n, name in enumerate(spellings, start=1):
        write_record(records, f"r{n}.md", fields(n, topics=[name]))
    report = build(load_config(write_config(tmp_path, ["records"])))
    out = tmp_path / "out"
    folders = sorted(p.name for p in (out / "topics").iterdir())
    assert folders == ["ai", "escape"]
    assert report.feeds == 2 * 3
    feed = feedparser.parse((out / "topics" / "ai" / "rss.xml").read_bytes())
    assert feed.feed.title == "Test News: AI"
    assert len(feed.entries) == 4
    assert {tag.term for entry in feed.entries for tag in entry.tags} == {"AI"}
    assert [p.relative_to(tmp_path).as_posix() for p in feed_paths(tmp_path)] == [
        "out/atom.xml",
        "out/rss.xml",
        "out/topics/ai/atom.xml",
        "out/topics/ai/rss.xml",
        "out/topics/escape/atom.xml",
        "out/topics/escape/rss.xml",
    ]
