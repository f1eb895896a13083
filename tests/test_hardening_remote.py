"""Hostile input from remote sources: relative links, markup, too many items."""

from __future__ import annotations

import json
from pathlib import Path

from aggregator.cli import main

from .conftest import running_server
from .factories import FAST_FETCH, feed_entries, fields, seed_page, url_source, write_config


def test_relative_links_resolve_against_the_page_and_unsafe_ones_are_dropped(
    tmp_path: Path, capsys
) -> None:
    items = [
        fields(1, webUrl="/story/one", images=[{"url": "img/one.jpg"}]),
        fields(2, webUrl="javascript:alert(1)"),
        fields(3, images=[{"url": "data:image/png;base64,AAAA"}]),
    ]
    with running_server() as server:
        server.expect_request("/api/news/index.json").respond_with_data(
            seed_page(items, 1, None), content_type="application/json"
        )
        config = write_config(
            tmp_path, extra=url_source(server.url_for("/api/news/index.json")) + FAST_FETCH
        )
        assert main(["build", "--config", str(config)]) == 1
        base = server.url_for("/")
    err = capsys.readouterr().err
    assert "[1].webUrl: only absolute http(s) links are allowed, got javascript:" in err
    assert "images" in err and "data:" in err  # the dropped image is named, as a warning
    entries = {entry.title: entry for entry in feed_entries(tmp_path / "out" / "rss.xml")}
    assert entries["Story number 1"].link == base + "story/one"
    assert entries["Story number 1"].media_content[0]["url"] == base + "api/news/img/one.jpg"
    assert "Story number 2" not in entries
    assert "media_content" not in entries["Story number 3"]


def test_markup_from_a_remote_feed_is_sanitised(tmp_path: Path) -> None:
    hostile = (
        '&lt;p onclick="steal()"&gt;Read &lt;a href="javascript:alert(1)"&gt;this&lt;/a&gt;'
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;"
    )
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        "<link>https://feed.example.net/</link><description>d</description>"
        "<item><title>&lt;b&gt;Bold&lt;/b&gt; claim</title>"
        "<link>https://feed.example.net/a</link>"
        f"<description>{hostile}</description>"
        "<pubDate>Mon, 04 Mar 2024 10:00:00 GMT</pubDate></item></channel></rss>"
    ).encode()
    with running_server() as server:
        server.expect_request("/feed.xml").respond_with_data(
            body, content_type="application/rss+xml"
        )
        config = write_config(tmp_path, extra=url_source(server.url_for("/feed.xml")) + FAST_FETCH)
        assert main(["build", "--config", str(config), "-q"]) == 0
    for name in ("rss.xml", "atom.xml", "feed.json"):
        data = (tmp_path / "out" / name).read_text(encoding="utf-8")
        assert "alert(" not in data and "javascript:" not in data and "onclick" not in data
    entry = feed_entries(tmp_path / "out" / "rss.xml")[0]
    assert entry.title == "Bold claim"
    assert "Read" in entry.summary and "this" in entry.summary


def test_items_per_source_are_capped_across_pages(tmp_path: Path, capsys) -> None:
    with running_server() as server:
        for page in (1, 2):
            items = [fields(n) for n in range(page * 10, page * 10 + 6)]
            path = "/api/news/index.json" if page == 1 else "/api/news/page/2/index.json"
            server.expect_request(path).respond_with_data(
                seed_page(items, page, 2 if page == 1 else None), content_type="application/json"
            )
        extra = FAST_FETCH + "\n[limits]\nmax_items_per_source = 8\n"
        config = write_config(
            tmp_path, extra=url_source(server.url_for("/api/news/index.json")) + extra
        )
        assert main(["build", "--config", str(config)]) == 0
    assert "4 more records, over the limit of 8 for one source" in capsys.readouterr().err
    assert len(feed_entries(tmp_path / "out" / "rss.xml")) == 8


def test_a_record_document_over_the_response_cap_is_reported(tmp_path: Path, capsys) -> None:
    big = json.dumps(fields(1, excerpt="x" * 5000)).encode()
    with running_server() as server:
        server.expect_request("/one.json").respond_with_data(big, content_type="application/json")
        extra = FAST_FETCH.replace("[fetch]\n", "[fetch]\nmax_bytes = 1024\n")
        config = write_config(tmp_path, extra=url_source(server.url_for("/one.json")) + extra)
        assert main(["build", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert server.url_for("/one.json") in err and "1024" in err.replace(",", "")
