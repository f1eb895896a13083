from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.config import load_config
from aggregator.pipeline import build

from .conftest import preview
from .factories import (
    BASE_URL,
    CORPUS,
    EXAMPLES,
    build_site,
    public_url,
    rss_files,
    write_config,
)


def outlines(output: Path) -> list[etree._Element]:
    document = etree.parse(str(output / "index.opml"), etree.XMLParser(resolve_entities=False))
    root = document.getroot()
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    assert root.findtext("head/title")
    return root.findall("body/outline")


@pytest.mark.parametrize("records", [EXAMPLES, CORPUS], ids=["examples", "corpus"])
def test_opml_lists_every_feed_on_disk(tmp_path: Path, records: Path) -> None:
    if not records.is_dir():
        pytest.skip(f"{records} is absent")
    config, _ = build_site(tmp_path, records)
    output = config.site.output_dir
    items = outlines(output)
    on_disk = {public_url(output, path) for path in rss_files(output)}
    listed = [item.get("xmlUrl") for item in items]
    assert len(listed) == len(set(listed)), "a feed is listed twice"
    assert set(listed) == on_disk
    assert listed[0] == BASE_URL + "rss.xml", "the all-topics feed comes first"
    assert len(on_disk) > 2
    for item in items:
        assert item.get("type") == "rss"
        assert item.get("text") and item.get("title") == item.get("text")
        page = item.get("htmlUrl")
        assert page.startswith(BASE_URL)
        assert (output / page.removeprefix(BASE_URL) / "index.html").is_file()


def test_opml_keeps_names_that_need_escaping(tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    (records / "one.md").write_text(
        "---\n"
        'title: "Chips & <Cheese>"\n'
        "webUrl: https://example.com/a\n"
        "publishedDateTime: 2026-11-01T10:00:00Z\n"
        'topics: ["R&D \\"labs\\" <2026>", "機械学習"]\n'
        "---\n",
        encoding="utf-8",
    )
    config, _ = build_site(tmp_path, records)
    titles = {item.get("title") for item in outlines(config.site.output_dir)}
    assert titles == {"Test News", 'Test News: R&D "labs" <2026>', "Test News: 機械学習"}


def test_opml_is_byte_identical_and_not_rewritten(tmp_path: Path) -> None:
    config, _ = build_site(tmp_path)
    opml = config.site.output_dir / "index.opml"
    first = opml.read_bytes()
    stamp = opml.stat().st_mtime_ns
    report = build(config)
    assert report.written == 0
    assert opml.read_bytes() == first
    assert opml.stat().st_mtime_ns == stamp
    other = build(config, tmp_path / "elsewhere")
    assert other.written == other.files
    assert (tmp_path / "elsewhere" / "index.opml").read_bytes() == first


@pytest.mark.skipif(shutil.which("newsboat") is None, reason="newsboat is not installed")
def test_a_real_reader_imports_the_opml_and_reads_every_feed(tmp_path: Path) -> None:
    """newsboat imports index.opml, then fetches each feed (stylesheet PI and all)."""
    output = tmp_path / "out"
    output.mkdir()
    with preview(output) as server:
        config = load_config(write_config(tmp_path, [EXAMPLES], base_url=server.url))
        build(config)
        home = tmp_path / "newsboat"
        home.mkdir()
        urls, cache = home / "urls", home / "cache.db"
        urls.write_text("", encoding="utf-8")
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
               "XDG_DATA_HOME": str(home / "data")}  # fmt: skip
        newsboat = ["newsboat", "-u", str(urls), "-c", str(cache)]
        run = {"env": env, "capture_output": True, "text": True, "timeout": 120, "check": True}
        subprocess.run([*newsboat, "-i", str(output / "index.opml")], **run)
        feeds = [public_url(output, path, server.url) for path in rss_files(output)]
        assert sorted(urls.read_text(encoding="utf-8").split()) == sorted(feeds)
        result = subprocess.run([*newsboat, "-x", "reload", "print-unread"], **run)
    guids = {entry.id for path in rss_files(output) for entry in feedparser.parse(path).entries}
    assert result.stdout.strip() == f"{len(guids)} unread articles"
    with sqlite3.connect(cache) as db:
        titles = dict(db.execute("SELECT rssurl, title FROM rss_feed").fetchall())
    assert titles[server.url + "topics/ai/rss.xml"] == "Test News: AI"
    assert len(titles) == len(feeds)
