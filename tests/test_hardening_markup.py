"""Markup, characters and links: what a hostile record can put into a feed."""

from __future__ import annotations

import unicodedata

import feedparser
import lxml.etree
import pytest

from aggregator import markup
from aggregator.config import LimitsConfig, RankingConfig, SiteConfig
from aggregator.errors import Problem, RecordError
from aggregator.model import Note, Record
from aggregator.rank import plan_feeds
from aggregator.render.feeds import render_feeds
from aggregator.urls import normalise_url, resolve_url
from aggregator.validate import RecordDefaults, record_from_mapping

from .factories import ATOM, CONTENT, feed_problems, html_problems

DEFAULTS = RecordDefaults(50.0, 50.0, ("utm_*",))
TEXT_DEFAULTS = RecordDefaults(50.0, 50.0, ("utm_*",), excerpt_html="text")
SITE = SiteConfig(
    title="Test", base_url="https://feeds.example.org/", output_dir=None,  # type: ignore[arg-type]
    description="d", language="en", author="a",
)  # fmt: skip


def record(defaults: RecordDefaults = DEFAULTS, notes: list[Note] | None = None, **fields):
    data = {
        "title": "A title",
        "webUrl": "https://example.com/a",
        "publishedDateTime": "2026-01-01T00:00:00Z",
    }
    data.update(fields)
    return record_from_mapping(data, defaults, "test.json", notes=notes)


def render(*records: Record) -> tuple[bytes, bytes]:
    plans, topics = plan_feeds(list(records), RankingConfig(), 50)
    return render_feeds(SITE, plans[0], {key: topic.name for key, topic in topics.items()})


# --- titles and other plain text -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<b>Bold</b> move", "Bold move"),
        ("<script>alert(1)</script>Real title", "Real title"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;Hidden", "Hidden"),  # entity-encoded markup
        ("&amp;lt;img src=x onerror=alert(1)&amp;gt;Twice", "Twice"),  # encoded twice
        ("AT&amp;T &amp; Verizon", "AT&T & Verizon"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),  # not markup: kept as text
        ("Fish &amp; Chips ]]> done", "Fish & Chips ]]> done"),
        ("tab\tnew\nline", "tab new line"),
    ],
)
def test_titles_are_plain_text(raw: str, expected: str) -> None:
    assert record(title=raw).title == expected


def test_xml_forbidden_characters_are_stripped_and_text_is_nfc() -> None:
    title = "Caf\u0065\u0301\x00\x01\x08\x0b\x0c\x1f\ufffe\uffff\ud800 ok"
    result = record(title=title)
    assert result.title == "Café ok"
    assert unicodedata.is_normalized("NFC", result.title)


def test_emoji_rtl_and_cjk_are_untouched() -> None:
    title = "😀👩‍👩‍👧 مرحبا بالعالم 東京の天気 עברית"
    assert record(title=title).title == title


def test_every_string_field_is_cleaned() -> None:
    dirty = "<i>x</i>\x01\ufffe"
    result = record(
        topics=[dirty + "topic"],
        type=dirty + "type",
        provider={"name": dirty + "provider", "domain": "Example.COM"},
        related=[{"title": dirty + "rel", "webUrl": "https://r.example/", "provider": dirty}],
        images=[{"url": "https://i.example/a.png"}],
    )
    assert result.topics == ("xtopic",)
    assert result.type == "xtype"
    assert result.provider is not None
    assert (result.provider.name, result.provider.domain) == ("xprovider", "example.com")
    assert result.related[0].title == "xrel"
    assert result.related[0].provider == "x"


# --- excerpts ---------------------------------------------------------------------------

HOSTILE_EXCERPT = (
    '<p onclick="steal()">Hello <b>world</b></p>'
    "<script>alert(1)</script><style>body{display:none}</style>"
    '<iframe src="https://evil.example/"></iframe>'
    '<a href="javascript:alert(1)">js</a> <a href="JaVaScRiPt:alert(2)">js2</a>'
    '<img src="data:image/png;base64,AAAA" onerror="alert(3)">'
    '<a href="https://ok.example/x">ok</a> <a href="relative/page">rel</a>'
    '<svg onload="alert(4)"></svg><form action="https://evil/"><input></form>'
    "<!-- comment --><object data=x></object>"
)


def test_excerpt_is_sanitised_with_an_allow_list() -> None:
    excerpt = record(excerpt=HOSTILE_EXCERPT).excerpt
    assert html_problems(excerpt) == []
    for gone in ("script", "style", "iframe", "onclick", "onerror", "javascript", "data:",
                 "svg", "form", "comment", "object", "relative/page"):  # fmt: skip
        assert gone not in excerpt.lower()
    assert "<p>Hello <b>world</b></p>" in excerpt
    assert '<a href="https://ok.example/x" rel="noopener noreferrer">ok</a>' in excerpt


def test_excerpt_text_mode_reduces_to_plain_text() -> None:
    result = record(TEXT_DEFAULTS, excerpt=HOSTILE_EXCERPT + " AT&amp;T")
    assert "<" not in result.excerpt
    assert result.excerpt.startswith("Hello world js js2 ok rel")
    assert result.excerpt.endswith("AT&amp;T")  # stored as HTML-escaped text
    assert result.excerpt_text.endswith("AT&T")


def test_relative_excerpt_links_resolve_against_a_remote_base_url() -> None:
    data = {
        "title": "t",
        "webUrl": "story/1",
        "publishedDateTime": "2026-01-01",
        "excerpt": '<a href="../about">about</a> <img src="/i.png">',
        "images": ["img/lead.jpg"],
        "related": [{"title": "r", "webUrl": "/other"}],
    }
    base = "https://remote.example/news/page/2/index.json"
    result = record_from_mapping(data, DEFAULTS, base, base_url=base)
    assert result.url == "https://remote.example/news/page/2/story/1"
    assert 'href="https://remote.example/news/page/about"' in result.excerpt
    assert 'src="https://remote.example/i.png"' in result.excerpt
    assert result.images[0].url == "https://remote.example/news/page/2/img/lead.jpg"
    assert result.related[0].url == "https://remote.example/other"


def test_nfc_cannot_reopen_a_tag() -> None:
    # '>' + U+0338 composes to '≯' under NFC; done after sanitising it would eat the
    # '>' that closes the tag and turn the following text into attributes.
    attack = '<a href="https://x.example/">\u0338 onmouseover=alert(1) y</a>'
    excerpt = record(excerpt=attack).excerpt
    assert html_problems(excerpt) == []
    assert "onmouseover" not in lxml_attributes(excerpt)


def lxml_attributes(fragment: str) -> str:
    import lxml.html

    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    return " ".join(name for element in root.iter() for name in element.attrib)


def test_over_long_strings_are_truncated_with_a_warning() -> None:
    limits = LimitsConfig(max_title_chars=20, max_excerpt_chars=50)
    defaults = RecordDefaults(50.0, 50.0, (), limits=limits)
    notes: list[Note] = []
    result = record(defaults, notes, title="word " * 10, excerpt="<b>" + "x" * 100 + "</b>")
    assert len(result.title) <= 20 and result.title.endswith("…")
    assert result.excerpt.startswith("<b>x") and result.excerpt.endswith("…</b>")
    assert [n.field for n in notes] == ["title", "excerpt"]
    assert "over the limit of 20 ([limits] max_title_chars)" in notes[0].reason


# --- links -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "data:text/html,<script>", "ftp://x.example/", "/relative",
     "relative", "//host.example/x", "mailto:a@b.example", "http://", "https://exa mple.com/",
     "http://[::1", "https://u:p@x.example/"],
)  # fmt: skip
def test_bad_article_links_reject_the_record(link: str) -> None:
    with pytest.raises(RecordError) as caught:
        record(webUrl=link)
    assert caught.value.field == "webUrl"


def test_bad_image_and_related_links_are_dropped_with_a_warning() -> None:
    notes: list[Note] = []
    result = record(
        notes=notes,
        images=["javascript:alert(1)", {"url": "/rel.png"}, "https://ok.example/a.png", 7],
        related=[
            {"title": "bad", "webUrl": "data:x"},
            {"title": "ok", "webUrl": "https://r.example/"},
        ],
    )
    assert [i.url for i in result.images] == ["https://ok.example/a.png"]
    assert [r.url for r in result.related] == ["https://r.example/"]
    assert [(n.field, n.action) for n in notes] == [
        ("images[0].url", "image dropped"),
        ("images[1].url", "image dropped"),
        ("images[3]", "image dropped"),
        ("related[0].webUrl", "related link dropped"),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://BÜCHER.de/Straße?q=ä#frag", "https://xn--bcher-kva.de/Stra%C3%9Fe?q=%C3%A4#frag"),
        ("https://例え.jp/パス", "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"),
        ("https://مثال.إختبار/", "https://xn--mgbh0fb.xn--kgbechtv/"),
        ("https://x.example/a%20b/c d", "https://x.example/a%20b/c%20d"),
        ("HTTP://X.Example:8080/p?a=1&amp;b=2", "http://x.example:8080/p?a=1&b=2"),
        ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
    ],
)
def test_idns_and_non_ascii_paths_are_encoded(raw: str, expected: str) -> None:
    assert normalise_url(raw) == expected
    assert normalise_url(expected) == expected  # idempotent
    assert normalise_url(raw).isascii()


def test_resolve_url_uses_the_base_only_for_relative_links() -> None:
    base = "https://remote.example/a/b.json"
    assert resolve_url("c/d", base) == "https://remote.example/a/c/d"
    assert resolve_url("https://other.example/", base) == "https://other.example/"
    with pytest.raises(ValueError):
        resolve_url("javascript:alert(1)", base)
    with pytest.raises(ValueError):
        resolve_url("c/d")


# --- rendering -------------------------------------------------------------------------


def test_feeds_carry_sanitised_excerpts_with_entities_and_cdata_ends_intact() -> None:
    excerpt = "<p>Fish &amp; Chips &lt;3 ]]> and <b>bold</b></p>" + HOSTILE_EXCERPT
    hostile = record(title="<b>T</b> ]]> &amp; x", excerpt=excerpt)
    plain = record(webUrl="https://example.com/plain", excerpt="Just text")
    rss, atom = render(hostile, plain)
    assert feed_problems(rss) == [] and feed_problems(atom) == []
    for data in (rss, atom):
        assert b"]]>" not in data.replace(b"<![CDATA[", b"")  # escaped, never raw
    rss_root, atom_root = lxml.etree.fromstring(rss), lxml.etree.fromstring(atom)
    item = rss_root.find("channel/item")
    assert item is not None
    assert item.findtext("title") == "T ]]> & x"
    description = item.findtext("description") or ""
    assert description.startswith("<p>Fish &amp; Chips &lt;3 ]]&gt; and <b>bold</b></p>")
    assert "<div><p>Fish &amp; Chips" in (item.findtext(CONTENT) or "")
    entries = atom_root.findall(f"{ATOM}entry")
    summary = entries[0].find(f"{ATOM}summary")
    assert summary is not None and summary.get("type") == "html"
    assert (summary.text or "").startswith("<p>Fish &amp; Chips &lt;3 ]]&gt;")
    plain_summary = entries[1].find(f"{ATOM}summary")
    assert plain_summary is not None and plain_summary.get("type") is None
    assert plain_summary.text == "Just text"
    parsed = feedparser.parse(atom)
    assert parsed.entries[0].title == "T ]]> & x"
    assert "Fish &amp; Chips &lt;3 ]]&gt; and <b>bold</b>" in parsed.entries[0].summary


def test_problem_lines_cannot_inject_terminal_escapes_or_newlines() -> None:
    line = str(Problem("evil\x1b[2J\nname.md", 3, "title", "bad\rvalue", "record skipped"))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line == "evil\\x1b[2J\\nname.md:3: error: title: bad\\rvalue; record skipped"


def test_markup_helpers_directly() -> None:
    assert markup.xml_safe("a\x00b\ufffec") == "abc"
    assert markup.truncate("abc", 5) == "abc"
    assert markup.truncate("one two three four", 10) == "one two…"
    assert markup.excerpt_html("a < b & c", "text") == "a &lt; b &amp; c"
    assert markup.holds_markup("a &amp; b") and not markup.holds_markup("a b")
