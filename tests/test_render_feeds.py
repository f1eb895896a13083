"""render.feeds: RSS 2.0 and Atom 1.0 read back the way readers read them."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.config import RankingConfig, SiteConfig
from aggregator.rank import FeedPlan, plan_feeds
from aggregator.render.feeds import render_feeds

from .factories import BASE_URL, make_record

SITE = SiteConfig(
    title="Test News",
    base_url=BASE_URL,
    output_dir=Path("unused"),
    description="Everything, ranked.",
    language="en",
    author="Test Desk",
)
ATOM = "{http://www.w3.org/2005/Atom}"
STRICT = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)


def stamp(moment: datetime) -> int:
    return int(moment.timestamp())


def parsed_stamp(struct) -> int:
    return calendar.timegm(struct)


def sample_records():
    return [
        make_record(
            1,
            title="Tom & Jerry <3 Reunite 🤖",
            excerpt="Cats & mice <script>alert(1)</script> agree.",
            publishedDateTime="2020-03-01T10:00:00Z",
            updatedDateTime="2020-03-02T08:30:00+02:00",
            quality=90,
            heat=137,
            topics=["AI", "Cartoons"],
            images=[{"url": "https://img.example/tom.jpg", "width": 1200, "height": 675}],
            related=[
                {
                    "title": "Another view",
                    "webUrl": "https://other.example/view",
                    "provider": {"name": "Other Desk"},
                },
                {"title": "Third take", "webUrl": "https://third.example/take"},
            ],
            webUrl="https://Cartoon.example/2020/03/tom-jerry/?utm_source=rss&id=7",
        ),
        make_record(2, publishedDateTime="2020-02-28T09:00:00Z", quality=40, topics=["AI"]),
        make_record(3, publishedDateTime="2020-02-29T12:00:00Z", quality=70, topics=["ai"]),
        make_record(
            4,
            publishedDateTime="2020-02-27",
            provider=None,
            topics=[],
            images=["https://img.example/plain"],
        ),
    ]


@pytest.fixture(scope="module")
def plans() -> dict[str | None, FeedPlan]:
    plans, _ = plan_feeds(sample_records(), RankingConfig(), max_items=50)
    return {None if p.topic is None else p.topic.slug: p for p in plans}


def rendered(plan: FeedPlan) -> tuple[bytes, bytes]:
    return render_feeds(SITE, plan, {"ai": "AI", "cartoons": "Cartoons"})


def test_both_feeds_parse_strictly_and_without_bozo(plans) -> None:
    for plan in plans.values():
        for data in rendered(plan):
            etree.fromstring(data, STRICT)
            parsed = feedparser.parse(data)
            assert not parsed.bozo, parsed.get("bozo_exception")
            assert len(parsed.entries) == len(plan.items)
    rss, atom = rendered(plans[None])
    assert feedparser.parse(rss).version == "rss20"
    assert feedparser.parse(atom).version == "atom10"


def test_items_are_in_rank_order(plans) -> None:
    plan = plans[None]
    # Record 1 is best; 3 beats the older 2 and 4 (neither input nor date order).
    assert [r.guid.split("/")[2] for r in plan.items] == [
        "cartoon.example",
        "www.outlet3.example",
        "www.outlet2.example",
        "www.outlet4.example",
    ]
    for data in rendered(plan):
        assert [e.id for e in feedparser.parse(data).entries] == [r.guid for r in plan.items]


def test_guid_is_the_canonical_link_and_atom_id_is_the_same(plans) -> None:
    plan = plans[None]
    rss, atom = rendered(plan)
    guids = etree.fromstring(rss, STRICT).findall("channel/item/guid")
    assert [g.text for g in guids] == [r.guid for r in plan.items]
    top = plan.items[0]
    assert top.guid == "https://cartoon.example/2020/03/tom-jerry?id=7"
    ids = [e.findtext(f"{ATOM}id") for e in etree.fromstring(atom, STRICT).iter(f"{ATOM}entry")]
    assert ids == [r.guid for r in plan.items]
    for data in (rss, atom):
        entry = feedparser.parse(data).entries[0]
        assert entry.link == "https://cartoon.example/2020/03/tom-jerry/?utm_source=rss&id=7"


def test_item_dates_come_from_the_record(plans) -> None:
    plan = plans[None]
    rss, atom = rendered(plan)
    pub_dates = [i.findtext("pubDate") for i in etree.fromstring(rss, STRICT).iter("item")]
    assert [parsedate_to_datetime(d) for d in pub_dates] == [r.published for r in plan.items]
    assert all(d.endswith("+0000") for d in pub_dates)  # RFC 822 with a numeric zone
    for entry, record in zip(feedparser.parse(atom).entries, plan.items, strict=True):
        assert parsed_stamp(entry.published_parsed) == stamp(record.published)
        assert parsed_stamp(entry.updated_parsed) == stamp(record.updated)
    top = feedparser.parse(atom).entries[0]
    assert parsed_stamp(top.updated_parsed) == stamp(datetime(2020, 3, 2, 6, 30, tzinfo=UTC))


def test_feed_date_is_the_newest_item_not_the_build_time(plans) -> None:
    newest = datetime(2020, 3, 2, 6, 30, tzinfo=UTC)  # record 1's update time
    rss, atom = rendered(plans[None])
    channel = etree.fromstring(rss, STRICT).find("channel")
    assert parsedate_to_datetime(channel.findtext("lastBuildDate")) == newest
    assert parsed_stamp(feedparser.parse(atom).feed.updated_parsed) == stamp(newest)
    # A feed without record 1 is dated by its own newest item.
    without_first = FeedPlan(None, plans[None].items[1:], 3)
    rss, atom = rendered(without_first)
    newest = datetime(2020, 2, 29, 12, tzinfo=UTC)  # record 3
    assert (
        parsedate_to_datetime(etree.fromstring(rss, STRICT).findtext("channel/lastBuildDate"))
        == newest
    )
    assert parsed_stamp(feedparser.parse(atom).feed.updated_parsed) == stamp(newest)
    empty = FeedPlan(None, (), 0)
    for data in rendered(empty):
        parsed = feedparser.parse(data)
        assert not parsed.bozo
        assert parsed.feed.updated_parsed.tm_year == 1970


def test_categories_use_the_display_name(plans) -> None:
    plan = plans["ai"]
    for data in rendered(plan):
        entries = feedparser.parse(data).entries
        # Record 3 says "ai": it is shown with the topic's display name.
        assert [[t.term for t in e.tags] for e in entries] == [["AI", "Cartoons"], ["AI"], ["AI"]]


def test_guid_is_a_permalink_only_when_it_is_exactly_the_link() -> None:
    same = make_record(1, webUrl="https://www.same.example/2026/11/story")
    slash = make_record(2, webUrl="https://www.slash.example/2026/11/story/")
    tracked = make_record(3, webUrl="https://www.tracked.example/story?utm_source=rss")
    plan = FeedPlan(None, (same, slash, tracked), 3)
    rss, _ = rendered(plan)
    items = etree.fromstring(rss, STRICT).findall("channel/item")
    marks = {i.findtext("link"): (i.findtext("guid"), i.find("guid").get("isPermaLink"))
             for i in items}  # fmt: skip
    assert marks == {
        "https://www.same.example/2026/11/story":
            ("https://www.same.example/2026/11/story", "true"),
        "https://www.slash.example/2026/11/story/":
            ("https://www.slash.example/2026/11/story", "false"),
        "https://www.tracked.example/story?utm_source=rss":
            ("https://www.tracked.example/story", "false"),
    }  # fmt: skip
    # A reader never takes a guid that is not a permalink for the link.
    links = [e.link for e in feedparser.parse(rss).entries]
    assert links == [i.findtext("link") for i in items]


def test_lead_image_is_an_enclosure_and_a_thumbnail_too(plans) -> None:
    rss, atom = rendered(plans[None])
    by_guid = {i.findtext("guid"): i for i in etree.fromstring(rss, STRICT).iter("item")}
    top = by_guid["https://cartoon.example/2020/03/tom-jerry?id=7"]
    [enclosure] = top.findall("enclosure")
    assert dict(enclosure.attrib) == {
        "url": "https://img.example/tom.jpg", "length": "0", "type": "image/jpeg"}  # fmt: skip
    media = "{http://search.yahoo.com/mrss/}"
    [thumbnail] = top.findall(f"{media}thumbnail")
    assert dict(thumbnail.attrib) == {
        "url": "https://img.example/tom.jpg", "width": "1200", "height": "675"}  # fmt: skip
    # Without a type to name (no file extension) there is no enclosure, but still media.
    untyped = by_guid["https://www.outlet4.example/2026/11/story-4"]
    assert untyped.findall("enclosure") == []
    assert untyped.find(f"{media}thumbnail").get("url") == "https://img.example/plain"
    entries = {e.id: e for e in feedparser.parse(atom).entries}
    entry = entries["https://cartoon.example/2020/03/tom-jerry?id=7"]
    assert [(x.href, x.type) for x in entry.enclosures] == [
        ("https://img.example/tom.jpg", "image/jpeg")]  # fmt: skip
    assert entry.link == "https://cartoon.example/2020/03/tom-jerry/?utm_source=rss&id=7"
    assert entry.media_thumbnail[0]["url"] == "https://img.example/tom.jpg"
    for data in (rss, atom):
        parsed = {e.id: e for e in feedparser.parse(data).entries}
        assert parsed["https://www.outlet4.example/2026/11/story-4"].enclosures == []


def test_lead_image_is_media_content_with_type_and_size(plans) -> None:
    for data in rendered(plans[None]):
        entries = {e.id: e for e in feedparser.parse(data).entries}
        top = entries["https://cartoon.example/2020/03/tom-jerry?id=7"]
        [media] = top.media_content
        assert media["url"] == "https://img.example/tom.jpg"
        assert media["type"] == "image/jpeg"
        assert (media["width"], media["height"]) == ("1200", "675")
        untyped = entries["https://www.outlet4.example/2026/11/story-4"]
        assert "type" not in untyped.media_content[0]


def test_related_coverage_is_linked(plans) -> None:
    rss, atom = rendered(plans[None])
    top = feedparser.parse(atom).entries[0]
    related = [(link.href, link.get("title")) for link in top.links if link.rel == "related"]
    assert related == [
        ("https://other.example/view", "Another view"),
        ("https://third.example/take", "Third take"),
    ]
    html = feedparser.parse(rss).entries[0].content[0].value
    assert 'href="https://other.example/view"' in html
    assert "Other Desk" in html


def test_text_survives_escaping(plans) -> None:
    for data in rendered(plans[None]):
        entry = feedparser.parse(data).entries[0]
        assert entry.title == "Tom & Jerry <3 Reunite 🤖"
    atom = etree.fromstring(rendered(plans[None])[1], STRICT)
    summary = next(atom.iter(f"{ATOM}entry")).find(f"{ATOM}summary")
    # The excerpt is a sanitised HTML fragment: the script is gone, "&" is escaped.
    assert (summary.get("type"), summary.text) == ("html", "Cats &amp; mice agree.")


def test_provider_is_the_author(plans) -> None:
    rss, atom = rendered(plans[None])
    for data in (rss, atom):
        entries = feedparser.parse(data).entries
        assert entries[0].author == "Outlet 1"
    entry = next(etree.fromstring(atom, STRICT).iter(f"{ATOM}entry"))
    assert entry.findtext(f"{ATOM}author/{ATOM}uri") == "https://outlet1.example/"


def test_feed_metadata_and_self_links(plans) -> None:
    plan = plans["ai"]
    rss, atom = rendered(plan)
    folder = BASE_URL + "topics/ai/"
    parsed_rss, parsed_atom = feedparser.parse(rss).feed, feedparser.parse(atom).feed
    assert parsed_rss.title == parsed_atom.title == "Test News: AI"
    assert parsed_rss.language == "en"
    assert parsed_rss.subtitle and parsed_atom.subtitle
    assert parsed_atom.author == "Test Desk"
    assert parsed_rss.generator == parsed_atom.generator == "aggregator"
    assert parsed_atom.id == folder + "atom.xml"
    links = {(link.rel, link.href, link.type) for link in parsed_rss.links}
    assert ("self", folder + "rss.xml", "application/rss+xml") in links
    links = {(link.rel, link.href, link.type) for link in parsed_atom.links}
    assert ("self", folder + "atom.xml", "application/atom+xml") in links
    assert ("alternate", folder, "text/html") in links
    assert feedparser.parse(rendered(plans[None])[0]).feed.title == "Test News"


def test_rendering_is_deterministic(plans) -> None:
    again, _ = plan_feeds(list(reversed(sample_records())), RankingConfig(), max_items=50)
    assert rendered(plans[None]) == rendered(again[0])
