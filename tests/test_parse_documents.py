"""parse: bytes of a record document -> plain mappings, with lines for errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aggregator.errors import RecordError
from aggregator.parse.documents import (
    NotARecord,
    SafeLoader,
    bytes_to_text,
    field_line,
    kind_for_suffix,
    parse_document,
    split_front_matter,
)
from aggregator.validate import load_record_file

from .factories import DEFAULTS, fields, markdown

MD = "---\ntitle: Hello\nwebUrl: https://a.example/x\n---\nBody text, ignored.\n"


def test_front_matter_gives_one_record_and_ignores_the_body() -> None:
    [raw] = parse_document(MD, "markdown")
    assert raw.data == {"title": "Hello", "webUrl": "https://a.example/x"}
    assert raw.line == 1
    assert raw.index is None


def test_front_matter_may_close_with_dots() -> None:
    [raw] = parse_document("---\ntitle: Dots\n...\nbody\n", "markdown")
    assert raw.data == {"title": "Dots"}


def test_markdown_without_front_matter_is_not_a_record() -> None:
    with pytest.raises(NotARecord):
        parse_document("# Just a page\n\nNo front matter.\n", "markdown")


def test_unclosed_front_matter_is_an_error_on_line_1() -> None:
    with pytest.raises(RecordError, match="not closed") as caught:
        split_front_matter("---\ntitle: Open\n")
    assert caught.value.line == 1


def test_bom_is_removed() -> None:
    text = bytes_to_text("\ufeff".encode() + MD.encode())
    assert text.startswith("---")
    assert parse_document(text, "markdown")[0].data["title"] == "Hello"


def test_crlf_line_endings_are_read() -> None:
    text = bytes_to_text(MD.replace("\n", "\r\n").encode())
    [raw] = parse_document(text, "markdown")
    assert raw.data == {"title": "Hello", "webUrl": "https://a.example/x"}


def test_bom_and_crlf_file_loads_as_a_record(tmp_path: Path) -> None:
    path = tmp_path / "bom-crlf.md"
    path.write_bytes(
        b"\xef\xbb\xbf" + markdown(fields(1, title="Caf\u00e9")).replace("\n", "\r\n").encode()
    )
    result = load_record_file(str(path), DEFAULTS)
    assert result.problems == ()
    [record] = result.records
    assert record.title == "Café"
    assert record.url == "https://www.outlet1.example/2026/11/story-1/"


def test_invalid_utf8_names_the_line() -> None:
    with pytest.raises(RecordError, match="not valid UTF-8") as caught:
        bytes_to_text(b"---\ntitle: ok\nexcerpt: \xff\xfe bad\n---\n")
    assert caught.value.line == 3


def test_binary_file_is_rejected() -> None:
    with pytest.raises(RecordError, match="binary"):
        bytes_to_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00")


def test_yaml_single_record() -> None:
    [raw] = parse_document("title: One\nheat: 3\n", "yaml")
    assert raw.data == {"title": "One", "heat": 3}
    assert raw.index is None


def test_yaml_list_of_records_keeps_positions() -> None:
    raws = parse_document("- title: A\n- title: B\n- title: C\n", "yaml")
    assert [r.data["title"] for r in raws] == ["A", "B", "C"]
    assert [r.index for r in raws] == [0, 1, 2]


def test_json_single_and_list() -> None:
    [one] = parse_document(json.dumps({"title": "J"}), "json")
    assert one.data == {"title": "J"}
    many = parse_document(json.dumps([{"title": "J1"}, {"title": "J2"}]), "json")
    assert [r.data["title"] for r in many] == ["J1", "J2"]


@pytest.mark.parametrize("key", ["value", "news", "items"])
def test_collection_pages(key: str) -> None:
    page = {key: [{"title": "P1"}, {"title": "P2"}], "nextPage": "page/2/index.json"}
    for text, kind in ((json.dumps(page), "json"), (yaml.safe_dump(page), "yaml")):
        raws = parse_document(text, kind)
        assert [r.data["title"] for r in raws] == ["P1", "P2"]
        assert [r.index for r in raws] == [0, 1]


def test_a_record_with_an_items_field_is_still_one_record() -> None:
    [raw] = parse_document(json.dumps({"title": "T", "items": [1, 2]}), "json")
    assert raw.data["title"] == "T"


def test_yaml_syntax_error_line_in_front_matter_counts_from_file_start() -> None:
    text = "---\ntitle: fine\nexcerpt: fine\ntopics: [AI, ML\nheat: 3\n---\n"
    with pytest.raises(RecordError, match="invalid YAML") as caught:
        parse_document(text, "markdown")
    # The flow sequence opened on file line 4 is found broken on line 5.
    assert caught.value.line == 5
    bad_key = "---\ntitle: fine\nexcerpt: fine\nheat: 3\n  bad indent: x\n---\n"
    with pytest.raises(RecordError) as caught:
        parse_document(bad_key, "markdown")
    assert caught.value.line == 5


def test_yaml_syntax_error_line_in_yaml_file() -> None:
    with pytest.raises(RecordError) as caught:
        parse_document("title: a\nheat: 1\n  oops: 2\n", "yaml")
    assert caught.value.line == 3


def test_json_syntax_error_line() -> None:
    with pytest.raises(RecordError, match="invalid JSON") as caught:
        parse_document('{\n  "title": "x",\n  "heat": ,\n}\n', "json")
    assert caught.value.line == 3


def test_unknown_tag_is_rejected_and_nothing_is_executed(tmp_path: Path) -> None:
    target = tmp_path / "made-by-yaml"
    text = f"---\ntitle: !!python/object/apply:os.mkdir ['{target}']\n---\n"
    with pytest.raises(RecordError, match="invalid YAML") as caught:
        parse_document(text, "markdown")
    assert caught.value.line == 2
    assert not target.exists()
    with pytest.raises(RecordError):
        parse_document("!custom {title: x}\n", "yaml")


def test_libyaml_safe_loader_is_used_when_present() -> None:
    expected = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    assert SafeLoader is expected


def test_empty_and_scalar_documents_are_errors() -> None:
    with pytest.raises(RecordError, match="empty"):
        parse_document("---\n---\n", "markdown")
    with pytest.raises(RecordError, match="expected a record"):
        parse_document('"just a string"', "json")


def test_kind_for_suffix() -> None:
    assert kind_for_suffix(".YML") == "yaml"
    assert kind_for_suffix(".yaml") == "yaml"
    assert kind_for_suffix(".json") == "json"
    assert kind_for_suffix(".md") == "markdown"


def test_field_line_finds_the_field() -> None:
    text = "---\ntitle: x\nexcerpt: y\npublishedDateTime: soon\n---\n"
    assert field_line(text, "publishedDateTime") == 4
    assert field_line(text, "missing") is None
