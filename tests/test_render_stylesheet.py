"""The XSL stylesheet the feeds point at: feeds stay valid, the page it makes is readable."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import feedparser
import lxml.html
from lxml import etree

from aggregator.render.feeds import feed_stylesheet, with_stylesheet

from .factories import BASE_URL, build_site

RECORD = """---
title: "Fish & Chips"
webUrl: https://example.com/fish
publishedDateTime: 2026-11-02T09:30:00Z
excerpt: "Fish &amp; chips, <b>not</b> bold & 3 < 4"
provider: {name: "Chippy News", domain: chippy.example}
topics: [Food]
---
"""


def feeds(output: Path) -> list[Path]:
    return sorted([*output.rglob("rss.xml"), *output.rglob("atom.xml")])


def test_every_feed_points_at_the_stylesheet_and_stays_valid(tmp_path: Path) -> None:
    config, _ = build_site(tmp_path)
    output = config.site.output_dir
    assert (output / "feed.xsl").read_bytes() == feed_stylesheet()
    for path in feeds(output):
        data = path.read_bytes()
        assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet ")
        root = etree.fromstring(data)
        instruction = root.getprevious()
        assert instruction.target == "xml-stylesheet"
        assert instruction.get("type") == "text/xsl"
        relative = path.relative_to(output).as_posix()
        assert urljoin(relative, instruction.get("href")) == "feed.xsl"
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.entries


def test_the_stylesheet_turns_each_feed_into_a_subscribe_page(tmp_path: Path) -> None:
    config, _ = build_site(tmp_path)
    output = config.site.output_dir
    transform = etree.XSLT(etree.parse(str(output / "feed.xsl")))
    for path in feeds(output):
        feed = feedparser.parse(path.read_bytes())
        page = lxml.html.fromstring(str(transform(etree.parse(str(path)))))
        relative = path.relative_to(output).as_posix()
        assert page.get("lang") == "en"
        assert page.findtext(".//title") == f"{feed.feed.title} (web feed)"
        assert page.findtext(".//h1") == feed.feed.title
        assert page.findtext(".//code") == BASE_URL + relative
        assert "copy this address into your feed reader" in page.find(".//header").text_content()
        assert {a.get("href") for a in page.findall(".//header//a")} == {
            "./", "rss.xml", "atom.xml", "feed.json"
        }  # fmt: skip
        links = [a.get("href") for a in page.findall(".//main//li//h2/a")]
        assert links == [entry.link for entry in feed.entries]


def test_dates_read_the_same_on_pages_and_both_feed_views(tmp_path: Path) -> None:
    """One format everywhere: "2 November 2026" on the HTML page and on the pages the
    stylesheet makes of its RSS and Atom feeds, for the same items in the same order."""
    config, _ = build_site(tmp_path)
    output = config.site.output_dir
    transform = etree.XSLT(etree.parse(str(output / "feed.xsl")))
    for folder in (output, *sorted((output / "topics").iterdir())):
        html_page = lxml.html.fromstring((folder / "index.html").read_bytes())
        shown = [(t.get("datetime")[:10], t.text) for t in html_page.findall(".//article//time")]
        assert shown
        assert all(re.fullmatch(r"[1-9]\d? [A-Z][a-z]+ 20\d\d", text) for _, text in shown)
        for name in ("rss.xml", "atom.xml"):
            view = lxml.html.fromstring(str(transform(etree.parse(str(folder / name)))))
            dates = [(t.get("datetime"), t.text.strip()) for t in view.findall(".//main//time")]
            assert dates == shown, folder / name


def test_escaped_html_in_rss_shows_as_the_characters(tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    (records / "fish.md").write_text(RECORD, encoding="utf-8")
    config, _ = build_site(tmp_path, records)
    output = config.site.output_dir
    transform = etree.XSLT(etree.parse(str(output / "feed.xsl")))
    for name in ("rss.xml", "atom.xml"):
        page = lxml.html.fromstring(str(transform(etree.parse(str(output / name)))))
        assert page.findtext(".//main//h2/a").strip() == "Fish & Chips"
        # The excerpt is sanitised HTML; the page shows its text, never markup.
        assert page.findtext(".//main//li/p").strip() == "Fish & chips, not bold & 3 < 4"
        assert "Chippy News" in page.find(".//main//li/div").text_content()
        assert page.findall(".//b") == [], "text, never markup"


def test_the_instruction_goes_after_the_declaration_or_first() -> None:
    declared = b"<?xml version='1.0' encoding='UTF-8'?>\n<rss/>"
    assert with_stylesheet(declared, "../x.xsl") == (
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b'<?xml-stylesheet type="text/xsl" href="../x.xsl"?>\n<rss/>'
    )
    assert with_stylesheet(b"<feed/>", 'a"b.xsl') == (
        b'<?xml-stylesheet type="text/xsl" href="a&quot;b.xsl"?>\n<feed/>'
    )
