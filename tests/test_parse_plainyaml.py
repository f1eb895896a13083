"""The plain-YAML fast path gives exactly what PyYAML's safe loader gives, or steps aside.

Also the fast paths of clean_text, sanitize_html, normalise_url and canonical_url against
their full versions.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import markup
from aggregator.config import DEFAULT_TRACKING_PARAMS
from aggregator.markup import plain_text_full
from aggregator.parse.documents import bytes_to_text, split_front_matter
from aggregator.parse.plainyaml import NotPlain, load_plain_yaml
from aggregator.sources.folder import iter_record_files
from aggregator.urls import canonical_url, canonical_url_full, normalise_url
from aggregator.validate import clean_text

from .factories import CORPUS, ROOT

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def reference(text: str) -> object:
    try:
        return yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        return exc


def assert_same_or_not_plain(text: str) -> bool:
    """True if the fast path read `text` (and then gave PyYAML's value, types included)."""
    expected = reference(text)
    try:
        value = load_plain_yaml(text)
    except NotPlain:
        return False
    assert not isinstance(expected, Exception), (text, expected)
    assert repr(value) == repr(expected), text
    assert value == expected
    return True


def yaml_texts(root: Path) -> list[tuple[Path, str]]:
    texts = []
    for path in iter_record_files(root):
        text = bytes_to_text(path.read_bytes())
        if path.suffix.lower() in (".yaml", ".yml"):
            texts.append((path, text))
        elif path.suffix.lower() != ".json":
            try:
                texts.append((path, split_front_matter(text)[0]))
            except Exception:
                continue  # not a record: no front matter
    return texts


def test_example_records_all_take_the_fast_path_with_identical_values() -> None:
    texts = yaml_texts(ROOT / "examples" / "records")
    assert len(texts) > 40
    read = [path for path, text in texts if assert_same_or_not_plain(text)]
    assert len(read) >= len(texts) - 2  # the odd hand-written one may step aside


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_records_are_read_identically() -> None:
    texts = yaml_texts(CORPUS)
    assert len(texts) > 150
    read = sum(assert_same_or_not_plain(text) for _, text in texts)
    assert read > 0.9 * len(texts)


TRICKY = [
    # scalars PyYAML types: null, bool, int (octal, hex, sexagesimal), float, timestamp
    "a: ~\nb: null\nc: Null\nd:\ne: NULL\n",
    "a: yes\nb: No\nc: on\nd: OFF\ne: true\nf: False\ng: y\nh: n\n",
    "a: 012\nb: 0x1F\nc: 1_000\nd: 1:30\ne: -7\nf: +3\ng: 0b101\nh: 09\n",
    "a: 1.5\nb: .inf\nc: -.Inf\nd: .nan\ne: 1e3\nf: 1.0e+3\ng: 6.8523015e+5\nh: 1:30.5\n",
    "a: 2023-03-10T18:20:54Z\nb: 2023-03-10\nc: 2023-03-10 18:20:54.5 +02:00\nd: 2023-3-1\n",
    "a: 2001-12-14t21:59:43.10-05:00\nb: 2023-03-10T18:20:54\n",
    # keys that are typed too
    "yes: 1\nno: 2\nnull: 3\n1: 4\n",
    # strings of every kind
    "a: \"quoted \\\"inner\\\" \\\\ back\"\nb: 'single ''quote'''\nc: plain text here\n",
    'a: "esc \\n \\t \\/ \\x41 \\u00e9 \\U0001F600 \\0 \\a \\e \\N \\_ \\L \\P \\ x"\n',
    'a: "bad \\q escape"\n',
    'a: "surrogate \\ud800"\n',
    "a: C# and F#\nb: a:b\nc: http://x.example/y?z=1\nd: [not flow\n",
    "a: text [with] brackets, commas {and} braces\n",
    "a: value # comment\n",
    "a: 'unclosed\n",
    'a: "unclosed\n',
    "a: '' \nb: \"\"\n",
    "a: -1\nb: -x\nc: - x\nd: ?x\ne: :x\n",
    "a: @reserved\n",
    "a: `tick\n",
    "a: %percent\n",
    "a: !!str 5\nb: &anchor 1\nc: *anchor\n",
    "a: |\n  block\n",
    "a: >\n  folded\n",
    "a: {b: 1}\n",
    "a: [1, 2]\n",
    # structure
    "list:\n  - a\n  - b\nnext: 1\n",
    "list:\n- a\n- b\nnext: 1\n",
    "map:\n  inner:\n    deeper: 1\n  other: 2\ntop: 3\n",
    "items:\n  - name: a\n    size: 1\n  - name: b\n    tags:\n      - x\n      - y\n",
    "items:\n  -   name: spaced\n      size: 2\n",
    "items:\n  - - nested\n",
    "items:\n  -\n    late: 1\n",
    "items:\n  - a\n   - b\n",
    "a: 1\n  b: 2\n",
    "a: multi\n  line plain\n",
    "a: 1\na: 2\n",
    "- one\n- two: 2\n  three: 3\n",
    "  indented: root\n  second: 2\n",
    "  indented: root\nless: 1\n",
    "? complex\n: key\n",
    "<<: {a: 1}\n",
    "a: =\n",
    "just a scalar\n",
    "",
    "# only a comment\n",
    "\n\n# comment\na: 1\n\n  # indented comment\nb: 2\n",
    'a: 1   \nb:   "x"   \n',
    "a: 1\r\nb: 2\r\n",
    "a: 1\rb: 2\n",
    "a:\t1\n",
    'a: "tab\tinside"\n',
    'a: "line\u2028separator"\n',
    'a: "nel\x85"\n',
    'a: "bom\ufeff"\n',
    'a: "bell\x07"\n',
    'a: "ünïcödé and 🚀"\nb: ünïcödé plain\n',
    "a:b\n",
    "-\n",
    "a: -\n",
    "a: :\n",
    "key with space: 1\n",
    '"quoted key": 1\n',
    "a:\n  - 1\n  -\n",
    "d1:\n d2:\n  d3:\n   d4:\n    d5:\n     d6:\n      d7:\n       d8: deep\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_yaml_is_read_identically_or_left_to_pyyaml(text: str) -> None:
    assert_same_or_not_plain(text)


_VALUES = [
    "", "x", "x y", '"q"', "'s'", "'it''s'", '"a\\"b"', '"\\u00e9"', '"\\q"', "1", "-1", "012",
    "0x1F", "1.5", "~", "null", "yes", "No", "2024-01-01", "2024-01-01T10:00:00Z", "a: b",
    "# c", "x # c", "x#c", "[1]", "{a: 1}", "&a x", "*a", "!!str 1", "|", ">", '"', "'", "- y",
    ":", "?", "-", "a:", "é", "🚀", "@x", "%x", "`x", "=", "<<",
]  # fmt: skip
_KEYS = ["", "a:", "b:", "key_1:", "k-2:", "yes:", "1:", "a:b", "a :", '"a":', "? a", "a"]


@st.composite
def yaml_like(draw: st.DrawFn) -> str:
    """Documents of lines made from the pieces record files are made of, and their
    near misses."""
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        indent = draw(st.sampled_from(["", " ", "  ", "   ", "    "]))
        dash = draw(st.sampled_from(["", "", "- ", "-  ", "-"]))
        key = draw(st.sampled_from(_KEYS))
        space = draw(st.sampled_from(["", " ", " ", "  "]))
        value = draw(st.sampled_from(_VALUES))
        trail = draw(st.sampled_from(["", "", " ", "\t", " # note"]))
        lines.append(indent + dash + key + space + value + trail)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))


@st.composite
def yaml_block(draw: st.DrawFn, indent: int = 0, depth: int = 0) -> list[str]:
    """Well-formed block YAML (mappings, sequences, items that are mappings) with scalars
    drawn from the pieces above, indented by 1-4 spaces a level."""
    step = draw(st.integers(1, 4))
    pad = " " * indent
    lines = []
    if depth < 3 and draw(st.booleans()) and depth > 0:
        for _ in range(draw(st.integers(1, 3))):
            if depth < 2 and draw(st.booleans()):
                item = draw(yaml_block(indent + 2, depth + 1))
                lines.append(f"{pad}- {item[0].lstrip()}")
                lines.extend(item[1:])
            else:
                lines.append(f"{pad}- {draw(st.sampled_from(_VALUES))}".rstrip())
        return lines
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(_KEYS[1:7]))
        if depth < 3 and draw(st.integers(0, 3)) == 0:
            lines.append(f"{pad}{key}")
            shift = draw(st.sampled_from([0, step])) if depth else step
            lines.extend(draw(yaml_block(indent + shift, depth + 1)))
        else:
            lines.append(f"{pad}{key} {draw(st.sampled_from(_VALUES))}".rstrip())
    return lines


@given(st.one_of(yaml_like(), yaml_block().map("\n".join)))
@settings(derandomize=True, max_examples=500, deadline=None)
def test_generated_yaml_is_read_identically_or_left_to_pyyaml(text: str) -> None:
    assert_same_or_not_plain(text)


def test_the_fast_path_reads_the_common_shapes() -> None:
    for text in (TRICKY[0], TRICKY[4], TRICKY[26], TRICKY[28], TRICKY[29]):
        assert assert_same_or_not_plain(text), text


# --- clean_text and normalise_url: fast paths against the full algorithms ---------


TEXTS = [
    "Plain title",
    "  spaced   out\ttabs\nnew lines  ",
    "Caf\u0065\u0301 composed",
    "entities &amp; &lt;tags&gt; &#8217; &copy",
    "controls \x00\x07\x1f and \x1c\x1d\x1e\x1f separators",
    "unicode spaces\u00a0\u2003\u3000here\u2028and\u2029there\x85",
    "\ufeffbom \ufffe \uffff",
    "",
    "   ",
    "emoji 🚀 and ünïcödé",
]


@pytest.mark.parametrize("text", TEXTS)
def test_clean_text_matches_the_full_algorithm(text: str) -> None:
    assert clean_text(text, "title") == plain_text_full(text)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_clean_text_matches_on_every_corpus_string() -> None:
    strings = corpus_strings()
    assert len(strings) > 1000
    for value in strings:
        assert clean_text(value, "x") == plain_text_full(value)


EXCERPTS = [
    "Plain words, quotes \" and ' and (brackets) = fine.",
    "  spaced   out  ",
    "a > b",
    "Fish & chips",
    "<b>bold</b> and <script>alert(1)</script>",
    "tabs\tand\nnew lines",
    "caf\u00e9 and \u201ccurly\u201d quotes",
    "nbsp\u00a0here",
    "controls \x00\x07 here",
    "",
]


@pytest.mark.parametrize("text", EXCERPTS)
def test_sanitize_shortcut_matches_the_full_sanitiser(text: str) -> None:
    assert markup.sanitize_html(text) == markup.sanitize_html_full(text)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=80))
@settings(derandomize=True, max_examples=300, deadline=None)
def test_sanitize_shortcut_matches_on_any_ascii_text(text: str) -> None:
    assert markup.sanitize_html(text) == markup.sanitize_html_full(text)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_sanitize_shortcut_matches_on_every_corpus_string() -> None:
    strings = corpus_strings()
    assert len(strings) > 1000
    for value in strings:
        assert markup.sanitize_html(value) == markup.sanitize_html_full(value)


@functools.cache
def corpus_strings() -> tuple[str, ...]:
    """Every string value in the corpus records' front matter (read once per session)."""
    return tuple(
        value
        for _, text in yaml_texts(CORPUS)
        if isinstance(data := reference(text), dict)
        for value in _strings(data)
    )


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


URLS = [
    "https://example.com/a/b?c=1",
    "https://example.com",
    "https://example.com/path?",
    "https://Example.com/Path",
    "HTTPS://example.com/x",
    "https://example.com:8080/x",
    "https://user@example.com/x",
    "https://example.com/a b",
    "https://example.com/a?b=1&c=2",
    "https://example.com/a?b=1&para=2",
    "https://example.com/a#frag",
    "https://exa..mple.com/x",
    "https://bücher.example/x",
    "https://example.com/%E2%82%AC/%zz",
    "https://example.com//double//slash/",
    "https://" + "a" * 64 + ".com/",
    " https://example.com/trim ",
    "https://example.com/ünïcode",
    "https://example.com/x?q=a?b/c",
    "https://example.com/~user/(x)*+,;=:@!$'",
    'https://example.com/x"quote',
]


def normalise_url_reference(value: str) -> str:
    """The full algorithm with the shortcut out of the way (a link with a space at its end
    is not taken by the shortcut but normalises to the same link)."""
    return normalise_url(value + " ")


@pytest.mark.parametrize("url", URLS)
def test_normalise_url_shortcut_agrees_with_the_full_algorithm(url: str) -> None:
    try:
        expected: object = normalise_url_reference(url)
    except ValueError as exc:
        expected = type(exc)
    try:
        got: object = normalise_url(url)
    except ValueError as exc:
        got = type(exc)
    assert got == expected


CANONICAL = [
    "https://example.com/",
    "https://example.com//",
    "https://example.com/a/",
    "https://example.com/a//",
    "https://example.com/a/b",
    "https://example.com/a/?utm_source=x",
    "https://example.com/a?b=1&utm_medium=y",
    "https://example.com/a#frag",
    "https://example.com/a/#",
    "https://example.com:8080/a/",
    "https://xn--bcher-kva.example/x/",
]


@pytest.mark.parametrize("url", [*CANONICAL, *(u.strip() for u in URLS)])
def test_canonical_url_shortcut_agrees_with_the_full_algorithm(url: str) -> None:
    try:
        url = normalise_url(url)
    except ValueError:
        return  # not a link a record keeps
    assert canonical_url(url, DEFAULT_TRACKING_PARAMS) == canonical_url_full(
        url, DEFAULT_TRACKING_PARAMS
    )


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_canonical_url_shortcut_agrees_on_every_corpus_link() -> None:
    links = set()
    for value in corpus_strings():
        try:
            links.add(normalise_url(value))
        except ValueError:
            continue  # not a link
    assert len(links) > 300
    for url in links:
        assert canonical_url(url, DEFAULT_TRACKING_PARAMS) == canonical_url_full(
            url, DEFAULT_TRACKING_PARAMS
        )
