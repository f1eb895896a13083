"""parse/feeds: a fetched body to raw records, which validate then checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.config import LimitsConfig
from aggregator.parse.feeds import FEED, JSON, UnparseableBody, parse_body
from aggregator.validate import RecordDefaults, SourceDefaults, records_from_source

from .factories import fields, rss_feed, seed_page


def test_parsing_keeps_every_entry_as_found_and_judges_none() -> None:
    bad = {"webUrl": "javascript:alert(1)", "quality": "very", "publishedDateTime": "soon"}
    url = "https://x.example/api/news/index.json"
    parsed = parse_body(
        seed_page([fields(1), bad], 1, "2"), "application/json", url, LimitsConfig()
    )
    assert parsed.kind == JSON
    assert parsed.next_page == "2"
    assert [(raw.data, raw.index) for raw in parsed.records] == [(fields(1), 0), (bad, 1)]
    # Validation is the caller's step: the bad record becomes a problem there.
    source = SourceDefaults(RecordDefaults(50.0, 50.0, ()))
    result = records_from_source(parsed.records, url, source)
    assert [r.title for r in result.records] == ["Story number 1"]
    assert [p.field for p in result.problems] == ["[1].title"]


def test_a_feed_entry_is_a_mapping_with_the_feed_as_provider() -> None:
    body = rss_feed([fields(1, excerpt="<b>Bold</b> words")], title="Example Feed")
    url = "https://feed.example.net/rss"
    parsed = parse_body(body, "application/rss+xml", url, LimitsConfig())
    assert parsed.kind == FEED
    (raw,) = parsed.records
    assert raw.data["title"] == "Story number 1"
    assert raw.data["webUrl"] == fields(1)["webUrl"]
    assert raw.data["provider"] == {"name": "Example Feed", "domain": "feed.example.net"}
    assert raw.data["publishedDateTime"] == "2026-11-02T08:00:00+00:00"
    assert "quality" not in raw.data  # nothing a feed does not say is filled in here


def test_feed_entries_carry_title_link_excerpt_dates_topics_provider_and_images() -> None:
    items = [fields(1, image="https://img.example.net/1.jpg", topics=["Machine Learning"])]
    body = rss_feed(items, title="Example &amp; Co", link="https://www.feed.example.net/")
    source = SourceDefaults(RecordDefaults(70.0, 20.0, ()), ("Aggregated",))
    url = "https://feed.example.net/rss"
    parsed = parse_body(body, "application/rss+xml", url, source.records.limits)
    (rec,) = records_from_source(parsed.records, url, source).records
    assert rec.title == "Story number 1"
    assert rec.url == "https://www.outlet1.example/2026/11/story-1/"
    assert rec.excerpt == "What happened in story 1."
    assert rec.published == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    assert rec.topics == ("Machine Learning", "Aggregated")
    assert rec.provider is not None
    assert (rec.provider.name, rec.provider.domain) == ("Example & Co", "feed.example.net")
    assert [(i.url, i.width, i.height) for i in rec.images] == [
        ("https://img.example.net/1.jpg", 640, 360)
    ]
    assert (rec.quality, rec.heat) == (70.0, 20.0)
    assert rec.origin == "https://feed.example.net/rss"


def test_feed_entry_without_date_takes_the_feed_date_or_is_reported() -> None:
    source = SourceDefaults(RecordDefaults(50.0, 50.0, ()))
    dated = b"""<rss version="2.0"><channel><title>T</title><link>https://t.example/</link>
    <lastBuildDate>Sat, 02 Mar 2024 10:00:00 GMT</lastBuildDate>
    <item><title>No date</title><link>https://t.example/1</link></item></channel></rss>"""
    url = "https://t.example/rss"
    parsed = parse_body(dated, "application/rss+xml", url, source.records.limits)
    (rec,) = records_from_source(parsed.records, url, source).records
    assert rec.published == datetime(2024, 3, 2, 10, 0, tzinfo=UTC)
    undated = dated.replace(b"<lastBuildDate>Sat, 02 Mar 2024 10:00:00 GMT</lastBuildDate>", b"")
    parsed = parse_body(undated, "application/rss+xml", url, source.records.limits)
    result = records_from_source(parsed.records, url, source)
    assert result.records == ()
    assert [str(p) for p in result.problems] == [
        "https://t.example/rss: error: [0].publishedDateTime: missing; record skipped"
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"\x00\x01\x02 binary", "application/octet-stream", "binary"),
        (b"<html><body>Not a feed</body></html>", "text/html", "not an RSS or Atom feed"),
        (b'{"title": "broken", ', "application/json", "invalid JSON"),
        (b"just some words", "text/plain", "expected a record"),
        (b"# Heading\n\nNo front matter.", "text/markdown", "without YAML front matter"),
        (b'{"page": 1, "value": null, "nextPage": null}', "application/json", "collection page"),
    ],
)
def test_garbage_bodies_are_unparseable(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(UnparseableBody, match=reason):
        parse_body(body, content_type, "https://x.example/doc", LimitsConfig())
