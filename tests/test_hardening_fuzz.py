"""Property tests and fuzzing of everything a hostile record can carry.

Properties:
- any mapping (any types, any strings, missing and extra keys) gives a clean Record or
  a RecordError/Unpublished, never another exception;
- any file bytes give records or clear Problems, never an exception;
- every feed built from whatever survives is well-formed XML that feedparser reads
  without `bozo`, with no script, handler or unsafe link.

The CI profile is small and derandomised. A long session:
`HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_hardening_fuzz.py` (20,000 examples
per property; HYPOTHESIS_EXAMPLES overrides the count).
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aggregator.config import LimitsConfig, RankingConfig, SiteConfig
from aggregator.errors import RecordError
from aggregator.markup import XML_FORBIDDEN
from aggregator.model import Record
from aggregator.rank import plan_feeds
from aggregator.render.feeds import render_feeds
from aggregator.validate import (
    RecordDefaults,
    Unpublished,
    load_record_file,
    record_from_mapping,
    records_from_text,
)

from .factories import feed_problems, html_problems, is_safe_url

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SMALL_LIMITS = LimitsConfig(max_yaml_depth=8, max_yaml_aliases=8, max_title_chars=200,
                            max_excerpt_chars=2000, max_items_per_source=20)  # fmt: skip
DEFAULTS = RecordDefaults(50.0, 50.0, ("utm_*",), limits=SMALL_LIMITS)
TEXT_DEFAULTS = RecordDefaults(50.0, 50.0, ("utm_*",), "text", SMALL_LIMITS)
SITE = SiteConfig(
    title="Fuzz", base_url="https://feeds.example.org/", output_dir=Path("out"),
    description="d", language="en", author="a",
)  # fmt: skip

# --- strategies ------------------------------------------------------------------------

any_char = st.characters(codec=None, exclude_categories=())  # surrogates, controls, all
SNIPPETS = [
    "<script>alert(1)</script>", "<scr<script>ipt>", "&lt;script&gt;", "&amp;lt;b&amp;gt;",
    "]]>", "<![CDATA[", "&", "&amp;", "&#0;", "&#1;", "&#xD800;", "&#xFFFE;", "&nbsp;",
    "&bogus;", "<", ">", '"', "'", "\x00", "\x0b", "\x1b[31m", "\ufffe", "\uffff", "\ud800",
    "\u0338", "\u202e", "😀", "مرحبا", "東京", "e\u0301", '<a href="javascript:alert(1)">x</a>',
    '<a href="relative">r</a>', '<img src=x onerror=alert(1)>', "<iframe src=//e></iframe>",
    "<style>*{}</style>", '<p style="x">p</p>', "<!--c-->", "<svg onload=alert(1)>",
    '<a href="https://ok.example/">ok</a>', "<b>", "</b>", "<p>", "<ul><li>", "\n", "\t",
    "<math><mi xlink:href=javascript:alert(1)>", "<base href=//evil/>", "<meta http-equiv>",
    "data:text/html,x", "JaVaScRiPt:", "%00", "\\", "../../etc",
]  # fmt: skip
hostile_text = st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(any_char, max_size=8)),
                        max_size=8).map("".join)  # fmt: skip
URLS = [
    "https://example.com/a", "http://例え.jp/パス?q=ä", "https://BÜCHER.de/x#f",
    "javascript:alert(1)", "data:text/html,<script>", "//host.example/x", "/rel", "rel",
    "https://exa mple.com/", "http://[::1]:80/", "http://[zz]/", "https://u:p@x.example/",
    "https://x.example:99999/", "https://x.example/?utm_source=a&amp;b=1", "", " ",
    "https://%41.example/", "https://a..b/", "ftp://x.example/", "https://x.example/\x00",
    "https://x.example/\ud800", "https://" + "a" * 70 + ".example/",
]  # fmt: skip
hostile_url = st.one_of(st.sampled_from(URLS), hostile_text, st.text(any_char, max_size=30))
# Integers past 4300 digits: their repr raises, so messages must not repr them.
huge_integers = st.builds(lambda exponent: 10**exponent, st.sampled_from([4400, 5000, 64]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_integers,
    st.floats(allow_nan=True, allow_infinity=True), hostile_text, st.binary(max_size=10),
    st.dates(), st.datetimes(timezones=st.none() | st.just(UTC)),
)  # fmt: skip
any_value = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=8,
)
dates = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda moment: moment.isoformat()
    ),
    st.sampled_from(
        [
            "2026-01-01",
            "2026-01-01T10:00:00+14:00",
            "0001-01-01T00:00:00-05:00",
            "9999-12-31T23:59:59-12:00",
            "next Tuesday",
            "2026-02-30",
        ]
    ),
    any_value,
)
image = st.one_of(hostile_url, st.fixed_dictionaries(
    {"url": hostile_url}, optional={"width": any_value, "height": any_value}))  # fmt: skip
related = st.fixed_dictionaries(
    {"webUrl": hostile_url},
    optional={"title": hostile_text, "originalUrl": hostile_url, "provider": any_value},
)
DOMAINS = ["Example.COM", "例え.jp", "a b", "x.example/path"]
provider = st.one_of(
    hostile_text,
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(hostile_text, any_value),
            "domain": st.one_of(hostile_text, st.sampled_from(DOMAINS)),
        },
    ),
)
KNOWN = {
    "title": st.one_of(hostile_text, any_value),
    "webUrl": hostile_url,
    "originalUrl": st.one_of(hostile_url, any_value),
    "publishedDateTime": dates,
    "updatedDateTime": dates,
    "quality": any_value,
    "heat": any_value,
    "published": st.one_of(st.booleans(), any_value),
    "topics": st.one_of(st.lists(st.one_of(hostile_text, any_value), max_size=4), any_value),
    "excerpt": st.one_of(hostile_text, any_value),
    "type": st.one_of(hostile_text, any_value),
    "provider": st.one_of(provider, any_value),
    "images": st.one_of(st.lists(image, max_size=3), any_value),
    "related": st.one_of(st.lists(related, max_size=3), any_value),
}
record_mappings = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({}, optional=KNOWN),
    st.dictionaries(st.one_of(hostile_text, st.integers()), any_value, max_size=3),
)
# Mappings that usually validate, so the feeds get hostile content to render.
valid_dates = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda moment: moment.isoformat()
    ),
    st.sampled_from(["0001-01-01T00:00:00-05:00", "9999-12-31T23:59:59-12:00", "2026-01-01"]),
)
RENDERED = {
    "webUrl": st.sampled_from([u for u in URLS if u.startswith("http") and " " not in u]),
    "publishedDateTime": valid_dates,
    "updatedDateTime": valid_dates,
    "quality": st.one_of(st.integers(-5, 200), st.floats(allow_nan=False)),
    "topics": st.lists(hostile_text, max_size=4),
    "excerpt": hostile_text,
    "type": hostile_text,
    "provider": provider,
    "images": st.lists(image, max_size=3),
    "related": st.lists(related, max_size=3),
}
likely_records = st.builds(
    lambda overlay, title, index: {
        "webUrl": f"https://news.example.com/{index}",
        "publishedDateTime": "2026-01-01T00:00:00Z",
        **overlay,
        "title": title + "x",
    },
    st.fixed_dictionaries({}, optional=RENDERED),
    hostile_text,
    st.integers(0, 10**6),
)

# --- checks ----------------------------------------------------------------------------


def check_record(record: Record) -> None:
    """Everything a Record holds is safe to hand to feedgen and to a reader."""
    texts = [record.title, record.excerpt, record.type or "", *record.topics]
    if record.provider:
        texts += [record.provider.name, record.provider.domain or ""]
    texts += [r.title for r in record.related] + [r.provider or "" for r in record.related]
    for text in texts:
        assert not XML_FORBIDDEN.search(text), text
    for text in [record.title, *record.topics]:
        assert unicodedata.is_normalized("NFC", text)
        assert not html_problems(text), text
    assert record.title
    for url in [record.url, record.guid, *(i.url for i in record.images),
                *(r.url for r in record.related)]:  # fmt: skip
        assert is_safe_url(url) and url.isascii(), url
    assert html_problems(record.excerpt) == [], record.excerpt
    assert len(record.title) <= SMALL_LIMITS.max_title_chars


def try_record(data: Any, defaults: RecordDefaults = DEFAULTS) -> Record | None:
    try:
        record = record_from_mapping(data, defaults, "fuzz.json")
    except (RecordError, Unpublished):
        return None
    check_record(record)
    return record


# --- properties ------------------------------------------------------------------------


@given(record_mappings)
def test_any_mapping_gives_a_clean_record_or_a_clear_error(data: dict[Any, Any]) -> None:
    try_record(data)
    try_record(data, TEXT_DEFAULTS)


@given(any_value)
def test_any_value_at_all_gives_a_record_or_a_clear_error(data: Any) -> None:
    try_record(data)


@given(st.lists(likely_records, min_size=1, max_size=6), st.booleans())
def test_feeds_from_hostile_records_are_valid_and_safe(
    mappings: list[dict[str, Any]], text_mode: bool
) -> None:
    records = [try_record(m, TEXT_DEFAULTS if text_mode else DEFAULTS) for m in mappings]
    kept = [r for r in records if r is not None]
    assume(kept)
    plans, topics = plan_feeds(kept, RankingConfig(), 50)
    names = {key: topic.name for key, topic in topics.items()}
    for plan in plans:
        for data in render_feeds(SITE, plan, names):
            assert feed_problems(data) == []


def _document(kind: str, value: Any) -> str:
    """`value` serialised as a record file; values a serialiser refuses become ''."""
    try:
        if kind == "json":
            return json.dumps(value, default=str)
        text = yaml.safe_dump(value, allow_unicode=True, default_flow_style=None)
    except (ValueError, TypeError, yaml.YAMLError):
        return ""
    return f"---\n{text}---\n" if kind == "markdown" else text


YAML_TOKENS = [
    "&a ", "*a", "&b ", "*b", "<<: ", "[", "]", "{", "}", ": ", "- ", "\n", "\n  ", "---\n",
    "...\n", "!!python/object:os.system ", "!!binary ", "!!set ", "!!omap ", "!foo ",
    "? ", "'", '"', "#", "|\n", ">\n", "title", "webUrl", "https://x.example/", "2026-13-45",
    "1" * 50, "%YAML 1.1\n", "\t", "\x00", "\ufeff",
]  # fmt: skip
document_bytes = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda kind, value: (kind, _document(kind, value)),
              st.sampled_from(["json", "yaml", "markdown"]), record_mappings).map(
        lambda pair: pair[1].encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map(
        lambda parts: ("---\n" + "".join(parts) + "\n---\n").encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(["[", "]", "{", "}", '"a":', ",", "1", '"x"', "null", "1e999",
                              "-", "\\ud800"]), max_size=60).map(
        lambda parts: "".join(parts).encode()),
)  # fmt: skip


@given(document_bytes, st.sampled_from([".md", ".yaml", ".yml", ".json", ".markdown"]))
def test_any_file_bytes_give_records_or_clear_problems(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "record" + suffix)
        path.write_bytes(data)
        result = load_record_file(str(path), DEFAULTS)
    for record in result.records:
        check_record(record)
    for problem in result.problems:
        line = str(problem)
        assert line.startswith(str(path)) and "\n" not in line
    text = data.decode("utf-8", "replace")
    for kind in ("markdown", "yaml", "json"):
        for record in records_from_text(text, kind, "fuzz", DEFAULTS).records:
            check_record(record)


# --- what the long fuzz sessions found (kept as regression tests) ----------------------


def test_found_title_as_a_huge_integer_is_a_clear_error() -> None:
    # str() of an int past 4300 digits raises ValueError: it escaped clean_text.
    assert try_record({"title": 10**4400, "webUrl": "https://x.example/",
                       "publishedDateTime": "2026-01-01"}) is None  # fmt: skip


def test_found_published_flag_as_a_huge_integer_is_a_clear_error() -> None:
    # repr() of such an int raised inside the error message itself.
    assert try_record({"title": "t", "webUrl": "https://x.example/", "published": 10**4400,
                       "publishedDateTime": "2026-01-01"}) is None  # fmt: skip
