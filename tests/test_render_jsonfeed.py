from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from .factories import CORPUS, EXAMPLES, build_site, public_url, rss_files

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
STRINGS = ("title", "home_page_url", "feed_url", "description", "language")
ITEM_STRINGS = ("url", "title", "content_html", "content_text", "summary", "image")


def check_json_feed_1_1(feed: dict[str, Any]) -> None:
    """The JSON Feed 1.1 rules (https://jsonfeed.org/version/1.1) our files use."""
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(feed["title"], str) and feed["title"]
    assert isinstance(feed["items"], list)
    for key in STRINGS:
        assert isinstance(feed.get(key, ""), str), key
    for author in feed.get("authors", []):
        assert isinstance(author["name"], str)
    for hub in feed.get("hubs", []):
        assert set(hub) == {"type", "url"}
    for item in feed["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert item["url"].startswith(("http://", "https://"))
        assert "content_html" in item or "content_text" in item
        for key in ITEM_STRINGS:
            assert isinstance(item.get(key, ""), str), key
        for key in ("date_published", "date_modified"):
            assert RFC3339.match(item[key]), item[key]
        assert all(isinstance(tag, str) for tag in item.get("tags", []))
    ids = [item["id"] for item in feed["items"]]
    assert len(ids) == len(set(ids)), "ids must be unique"


@pytest.mark.parametrize("records", [EXAMPLES, CORPUS], ids=["examples", "corpus"])
def test_every_feed_has_a_valid_json_feed_with_the_same_items(
    tmp_path: Path, records: Path
) -> None:
    if not records.is_dir():
        pytest.skip(f"{records} is absent")
    config, _ = build_site(tmp_path, records)
    output = config.site.output_dir
    for rss_path in rss_files(output):
        json_path = rss_path.with_name("feed.json")
        feed = json.loads(json_path.read_bytes())
        check_json_feed_1_1(feed)
        assert feed["feed_url"] == public_url(output, json_path)
        rss = feedparser.parse(rss_path.read_bytes())
        assert not rss.bozo, rss.get("bozo_exception")
        assert feed["title"] == rss.feed.title
        assert [item["id"] for item in feed["items"]] == [entry.id for entry in rss.entries]
        assert [item["url"] for item in feed["items"]] == [entry.link for entry in rss.entries]
        published = [datetime.fromisoformat(item["date_published"]) for item in feed["items"]]
        assert [d.utctimetuple() for d in published] == [e.published_parsed for e in rss.entries]


def test_json_feed_dates_match_atom(tmp_path: Path) -> None:
    config, _ = build_site(tmp_path)
    output = config.site.output_dir
    feed = json.loads((output / "feed.json").read_bytes())
    atom = feedparser.parse((output / "atom.xml").read_bytes())
    assert not atom.bozo
    assert [i["date_modified"] for i in feed["items"]] == [e.updated for e in atom.entries]
    assert [i["date_published"] for i in feed["items"]] == [e.published for e in atom.entries]


def test_json_feed_bytes_are_deterministic(tmp_path: Path) -> None:
    first, _ = build_site(tmp_path / "a")
    second, _ = build_site(tmp_path / "b")
    for path in first.site.output_dir.rglob("feed.json"):
        data = path.read_bytes()
        twin = second.site.output_dir / path.relative_to(first.site.output_dir)
        assert twin.read_bytes() == data
        canonical = json.dumps(json.loads(data), ensure_ascii=False, indent=2, sort_keys=True)
        assert data == (canonical + "\n").encode("utf-8"), "keys sorted, stable layout"


def test_json_feed_names_the_websub_hub(tmp_path: Path) -> None:
    hub = "https://hub.example.net/"
    config, _ = build_site(tmp_path, site=f'websub_hub = "{hub}"')
    feed = json.loads((config.site.output_dir / "topics" / "ai" / "feed.json").read_bytes())
    assert feed["hubs"] == [{"type": "WebSub", "url": hub}]
    plain, _ = build_site(tmp_path / "plain")
    assert "hubs" not in json.loads((plain.site.output_dir / "feed.json").read_bytes())
