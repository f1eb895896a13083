"""Limits: file size, YAML depth and aliases, JSON depth, items, odd values."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aggregator.config import LimitsConfig
from aggregator.errors import RecordError
from aggregator.limits import LimitExceeded, nesting_depth, read_capped, take_items
from aggregator.parse.documents import load_json, load_yaml
from aggregator.validate import (
    RecordDefaults,
    load_record_file,
    read_record_bytes,
    records_from_text,
)

from .factories import fields

DEFAULTS = RecordDefaults(50.0, 50.0, ())
GOOD = "title: t\nwebUrl: https://example.com/\npublishedDateTime: 2026-01-01\n"


def billion_laughs(levels: int = 10, width: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def merge_key_bomb(levels: int = 30) -> str:
    lines = ["m0: &m0 {k0: 1}"]
    for level in range(1, levels):
        lines.append(f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}], k{level}: 1}}")
    return "\n".join(lines) + "\n"


def alias_chain(levels: int = 40) -> str:
    """Two aliases per level: 2**levels when expanded, yet only 2 * levels alias events."""
    lines = ["c0: &c0 [x]"]
    lines += [f"c{i}: &c{i} [*c{i - 1}, *c{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bomb", [billion_laughs(), merge_key_bomb(), alias_chain()])
def test_alias_bombs_fail_with_a_clear_error(bomb: str) -> None:
    with pytest.raises(LimitExceeded) as caught:
        load_yaml(bomb)
    assert "alias uses (as expanded) is over the limit of 64 ([limits] max_yaml_aliases)" in str(
        caught.value
    )
    assert caught.value.line is not None and caught.value.line <= 8


def test_alias_bomb_in_a_record_file_is_one_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "bomb.md"
    path.write_text("---\n" + GOOD + billion_laughs() + "quality: *a9\n---\n", encoding="utf-8")
    result = load_record_file(str(path), DEFAULTS)
    assert result.records == ()
    [problem] = result.problems
    assert str(problem).startswith(f"{path}:")
    assert "[limits] max_yaml_aliases" in str(problem) and str(problem).endswith("file skipped")


def test_ordinary_aliases_still_work() -> None:
    data = load_yaml("base: &b {name: X}\none: *b\ntwo: *b\nmerged: {<<: *b, extra: 1}\n")
    assert data["one"] == data["two"] == {"name": "X"}
    assert data["merged"] == {"name": "X", "extra": 1}


def test_alias_count_is_configurable() -> None:
    text = "a: &a [1]\n" + "".join(f"k{i}: *a\n" for i in range(10))
    assert load_yaml(text, limits=LimitsConfig(max_yaml_aliases=10))["k9"] == [1]
    with pytest.raises(LimitExceeded):
        load_yaml(text, limits=LimitsConfig(max_yaml_aliases=9))


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 40 + "]" * 40,  # flow style
        "".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "x: 1\n",  # block
        "x: " + "[" * 5000 + "]" * 5000,  # past libyaml's own limit
        "a: &a " + "[" * 20 + "]" * 20 + "\nb: " + "[" * 20 + "*a" + "]" * 20,  # via alias
    ],
)
def test_yaml_nesting_is_capped(text: str) -> None:
    with pytest.raises(RecordError) as caught:
        load_yaml(text)
    assert "nesting" in str(caught.value)


def test_yaml_at_the_depth_limit_loads() -> None:
    limits = LimitsConfig(max_yaml_depth=5)
    assert load_yaml("a: [[[[1]]]]", limits=limits) == {"a": [[[[1]]]]}
    with pytest.raises(LimitExceeded):
        load_yaml("a: [[[[[1]]]]]", limits=limits)
    with pytest.raises(LimitExceeded):  # same, on the composer path (text holds a '*')
        load_yaml("s: '*'\na: [[[[[1]]]]]", limits=limits)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: !!python/object/apply:os.system ['echo hi']", "could not determine a constructor"),
        ("a: !!python/name:os.system", "could not determine a constructor"),
        ("a: !custom x", "could not determine a constructor"),
        ("a: 2023-13-45", "invalid YAML value: month must be in 1..12"),
        ("a: " + "1" * 5000, "invalid YAML value: Exceeds the limit"),
        ("? [1, 2]\n: x", "found unhashable key"),
        ("a: *undefined", "found undefined alias"),
    ],
)
def test_unsafe_or_unbuildable_yaml_is_a_clear_error(text: str, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        load_yaml(text)
    assert reason in str(caught.value)


def test_json_nesting_and_odd_values() -> None:
    assert load_json("[" * 32 + "]" * 32) is not None
    for text in ("[" * 33 + "]" * 33, "[" * 100_000 + "]" * 100_000):
        with pytest.raises(LimitExceeded) as caught:
            load_json(text)
        assert "[limits] max_yaml_depth" in str(caught.value)
    with pytest.raises(RecordError, match="invalid JSON value"):
        load_json("1" * 5000)


def test_file_size_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as out:  # a sparse 64 GiB file: reading it would never finish
        out.truncate(64 * 1024**3)
    [problem] = load_record_file(str(path), DEFAULTS).problems
    assert "size in bytes (68,719,476,736) is over the limit of 1,048,576" in str(problem)
    assert "([limits] max_file_bytes); file skipped" in str(problem)


def test_file_size_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(fields(1)), encoding="utf-8")
    size = path.stat().st_size
    fits = RecordDefaults(50.0, 50.0, (), limits=LimitsConfig(max_file_bytes=size))
    assert len(load_record_file(str(path), fits).records) == 1
    too_small = RecordDefaults(50.0, 50.0, (), limits=LimitsConfig(max_file_bytes=size - 1))
    assert "max_file_bytes" in str(load_record_file(str(path), too_small).problems[0])


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    [problem] = load_record_file(str(fifo), DEFAULTS).problems
    assert "not a regular file; file skipped" in str(problem)


def test_binary_file_is_one_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "image.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    [problem] = load_record_file(str(path), DEFAULTS).problems
    assert "binary file" in str(problem)


def test_items_per_document_are_capped_with_a_warning() -> None:
    text = "[" + ",".join(json.dumps(fields(i)) for i in range(12)) + "]"
    defaults = RecordDefaults(50.0, 50.0, (), limits=LimitsConfig(max_items_per_source=5))
    result = records_from_text(text, "json", "page.json", defaults)
    assert len(result.records) == 5
    [warning] = result.problems
    assert warning.severity == "warning"
    assert str(warning) == (
        "page.json: warning: 12 records, over the limit of 5 ([limits] max_items_per_source);"
        " the first 5 kept"
    )


def test_generic_limit_helpers() -> None:
    assert read_capped([b"ab", b"cd"], 4) == b"abcd"
    with pytest.raises(LimitExceeded, match="over the limit of 3 \\(fetch max_bytes\\)"):
        read_capped(iter([b"ab", b"cd", b"ef"]), 3, "fetch max_bytes")
    assert take_items([1, 2, 3], 5, already=3) == ([1, 2], 1)
    assert take_items([1, 2], 5) == ([1, 2], 0)
    assert nesting_depth({"a": [1, {"b": 2}]}, 3, "k") == 3
    assert nesting_depth("scalar", 1, "k") == 0
    with pytest.raises(LimitExceeded, match=r"nesting depth \(4\) is over the limit of 3"):
        nesting_depth({"a": [1, {"b": [[]]}]}, 3, "k")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_a_file_longer_than_its_stat_size_is_read_on_up_to_the_limit() -> None:
    # /proc files are regular files that report size 0 and yet hold text: the same as a
    # record file that grows between stat and read.
    path = "/proc/self/status"
    assert os.stat(path).st_size == 0
    assert read_record_bytes(path, 1 << 20).startswith(b"Name:")
    with pytest.raises(LimitExceeded):
        read_record_bytes(path, 10)
