"""A build over the real records in ../shared/corpus/everyday-ai (skipped where absent).

The expectations are worked out here straight from the files' front matter, not from the
pipeline: every published record with a title, a date and an http(s) link must reach the
all-topics feed, and every topic of those records must get its own pair of feeds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
import yaml
from lxml import etree

from aggregator.collect import collect
from aggregator.config import DEFAULT_TRACKING_PARAMS, load_config
from aggregator.curate import curate
from aggregator.model import Record
from aggregator.pipeline import build
from aggregator.report import BuildReport
from aggregator.topics import topic_key
from aggregator.urls import canonical_url, normalise_url

from .factories import CORPUS, age, feed_paths, snapshot, write_config

SOURCE = CORPUS / "everyday-ai"
pytestmark = pytest.mark.skipif(not SOURCE.is_dir(), reason=f"corpus not found at {SOURCE}")

TITLE = "AI Every Day"
SITE_URL = "https://news.example.org/ai/"
FRONT = re.compile(r"\A\ufeff?---\r?\n(.*?)^---\r?$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Expected:
    guids: frozenset[str]  # canonical links of the publishable records
    topics: frozenset[str]  # case-folded topic names of those records
    unpublished: int
    invalid: int


def usable_link(data: dict) -> str | None:
    for key in ("webUrl", "originalUrl"):
        value = data.get(key)
        if isinstance(value, str) and re.match(r"\s*https?://[^/\s]", value, re.IGNORECASE):
            return value
    return None


def expected_from_files() -> Expected:
    guids, topics, unpublished, invalid = set(), set(), 0, 0
    for path in sorted(SOURCE.rglob("*.md")):
        match = FRONT.match(path.read_text(encoding="utf-8"))
        assert match, path
        data = yaml.safe_load(match.group(1))
        if data.get("published") is False:
            unpublished += 1
            continue
        link = usable_link(data)
        if not (str(data.get("title") or "").strip() and link and data.get("publishedDateTime")):
            invalid += 1
            continue
        guids.add(canonical_url(normalise_url(link), DEFAULT_TRACKING_PARAMS))
        topics.update(" ".join(t.split()).casefold() for t in data.get("topics") or [] if t)
    return Expected(frozenset(guids), frozenset(topics), unpublished, invalid)


@dataclass(frozen=True)
class Built:
    report: BuildReport
    output: Path
    config: object


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("corpus")
    extra = "\n[feeds]\nmax_items = 100000\n\n[ranking]\nmax_per_provider = 100000\n"
    path = write_config(folder, [SOURCE], extra, title=TITLE, base_url=SITE_URL, output="public")
    config = load_config(path)
    return Built(build(config), folder / "public", config)


@pytest.fixture(scope="module")
def expected() -> Expected:
    return expected_from_files()


def feed_files(output: Path) -> list[Path]:
    return feed_paths(output)


def test_counts_match_the_files(built: Built, expected: Expected) -> None:
    report = built.report
    assert report.documents == len(list(SOURCE.rglob("*.md")))
    assert report.unpublished == expected.unpublished
    assert report.rejected == expected.invalid
    # copies of one story under other links are one item (see the next test)
    assert report.items + report.duplicates == report.records
    assert report.records - report.duplicates <= len(expected.guids) <= report.records
    assert report.feeds == 2 * (1 + len(expected.topics))


def test_every_publishable_record_reaches_the_all_topics_feed(built: Built, expected) -> None:
    """As an item of its own, or listed in the item of its story as another copy."""
    feed = json.loads((built.output / "feed.json").read_text(encoding="utf-8"))
    copies = {
        canonical_url(normalise_url(copy["url"]), DEFAULT_TRACKING_PARAMS)
        for item in feed["items"]
        for copy in item.get("_aggregator", {}).get("also_covered_by", [])
    }
    assert copies, "the corpus holds copies of one story under other links"
    for name in ("rss.xml", "atom.xml"):
        entries = feedparser.parse((built.output / name).read_bytes()).entries
        ids = [entry.id for entry in entries]
        assert len(ids) == len(set(ids))
        assert set(ids).isdisjoint(copies)
        assert set(ids) | copies == expected.guids


def test_every_topic_gets_an_rss_and_an_atom_feed(built: Built, expected: Expected) -> None:
    folders = sorted((built.output / "topics").iterdir())
    assert len(folders) == len(expected.topics)
    names = set()
    for folder in folders:
        assert (folder / "rss.xml").is_file() and (folder / "atom.xml").is_file()
        rss = feedparser.parse((folder / "rss.xml").read_bytes())
        atom = feedparser.parse((folder / "atom.xml").read_bytes())
        assert rss.feed.title == atom.feed.title
        assert rss.feed.title.startswith(f"{TITLE}: ")
        names.add(rss.feed.title.removeprefix(f"{TITLE}: ").casefold())
        assert [e.id for e in rss.entries] == [e.id for e in atom.entries]
        assert rss.entries, folder
        topic = rss.feed.title.removeprefix(f"{TITLE}: ")
        assert all(topic in {t.term for t in e.tags} for e in rss.entries)
    assert names == expected.topics


def test_every_feed_is_well_formed_and_read_without_bozo(built: Built) -> None:
    files = feed_files(built.output)
    assert len(files) == built.report.feeds
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    for path in files:
        data = path.read_bytes()
        etree.fromstring(data, parser)
        parsed = feedparser.parse(data)
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        assert parsed.version == ("rss20" if path.name == "rss.xml" else "atom10")


def test_second_build_changes_no_file(built: Built) -> None:
    age(built.output)
    before = snapshot(built.output)
    report = build(built.config)
    assert report.written == 0
    assert snapshot(built.output) == before


# --- curation with default settings, over all three folders of the corpus ---------------------

FOLDERS = ("everyday-ai", "everyday-cc-powerapps", "everyday-powerapps-api")


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("curated")
    sources = [CORPUS / name for name in FOLDERS]
    path = write_config(folder, sources, title=TITLE, base_url=SITE_URL, output="public")
    config = load_config(path)
    return Built(build(config), folder / "public", config)


def json_feeds(output: Path) -> list[dict]:
    return [json.loads(path.read_text("utf-8")) for path in sorted(output.rglob("feed.json"))]


def test_every_feed_is_full_where_enough_stories_exist(curated: Built) -> None:
    max_items = curated.config.feeds.max_items
    counts = {}
    for feed in json_feeds(curated.output):
        counts[feed["feed_url"]] = len(feed["items"])
    everything = counts["https://news.example.org/ai/feed.json"]
    assert everything == max_items  # 187 stories: the all-topics feed is full
    power_apps = counts["https://news.example.org/ai/topics/power-apps/feed.json"]
    assert power_apps == max_items  # 96 stories, 79 % of them from one provider
    plans = curate(curated.config, collect(curated.config)).plans
    assert all(len(plan.items) == min(max_items, plan.total) for plan in plans)  # fill 1.0


def test_no_feed_holds_one_story_twice(curated: Built) -> None:
    for feed in json_feeds(curated.output):
        links = []
        for item in feed["items"]:
            links.append(item["id"])
            links.extend(c["url"] for c in item.get("_aggregator", {}).get("also_covered_by", []))
        assert len(links) == len(set(links)), feed["feed_url"]
        told = [item["title"].casefold() for item in feed["items"]]
        assert len(told) == len(set(told)), feed["feed_url"]


def test_a_story_two_outlets_filed_on_one_day_is_one_item_listing_the_other(curated) -> None:
    [feed] = [
        f for f in json_feeds(curated.output) if f["feed_url"].endswith("google-ai/feed.json")
    ]
    [item] = [i for i in feed["items"] if i["title"].startswith("Synopsys ARC EV Processor")]
    [copy] = item["_aggregator"]["also_covered_by"]
    assert copy["provider"] == "Electronic Engineering Journal"
    assert "Also covered by" in item["content_html"] and copy["url"] in item["content_html"]


def test_every_feed_holds_its_topics_newest_story(curated: Built) -> None:
    """The newest record of each topic (read again here) is an item, or one of its copies."""
    newest: dict[str | None, Record] = {}
    for record in collect(curated.config).records:
        for key in (None, *(topic_key(t) for t in record.topics)):
            best = newest.get(key)
            if best is None or (record.published, record.guid) > (best.published, best.guid):
                newest[key] = record
    for feed in json_feeds(curated.output):
        title = feed["title"]
        key = topic_key(title.removeprefix(f"{TITLE}: ")) if title != TITLE else None
        shown = set()
        for item in feed["items"]:
            shown.add(item["id"])
            shown.update(c["url"] for c in item.get("_aggregator", {}).get("also_covered_by", []))
        assert newest[key].guid in shown or newest[key].url in shown, title
