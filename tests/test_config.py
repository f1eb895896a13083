"""Config errors: every one in one run, each with its line, a suggestion for a misspelt
key, and sources counted from 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import key_lines, load_config
from aggregator.errors import ConfigError

from .factories import fields, write_record

BROKEN = """\
[site]
title = "News"
base_url = "news.example.org"

[[sources]]
path = "records"

[[sources]]
url = "https://example.org/feed.xml"
max_pages = 0
colour = "red"

[[sources]]
path = "records"
max_pages = 3

[ranking]
doubling_hour = 12
max_per_provider = -1

[feeds]
max_items = "all"

[fetch]
timeout = -1

[rankng]
x = 1
"""


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    prefix = f"{path}:"
    return [str(error).removeprefix(prefix) for error in caught.value.errors]


def test_every_error_at_once_in_line_order(tmp_path: Path) -> None:
    assert errors_of(tmp_path, BROKEN) == [
        "3: site.base_url: expected an absolute http(s) URL, got 'news.example.org'",
        "10: sources[2].max_pages: expected a whole number >= 1, got 0",
        "11: sources[2].colour: unknown setting; expected one of drop, exclude, heat, "
        "include, interval, keep, max_pages, min_heat, min_quality, name, next_page, path, "
        "quality, timeout, topics, url",
        "15: sources[3].max_pages: only for 'url' sources",
        "18: ranking.doubling_hour: unknown setting; did you mean 'doubling_hours'?",
        "19: ranking.max_per_provider: expected a whole number >= 0, got -1",
        "22: feeds.max_items: expected a whole number >= 1, got 'all'",
        "25: fetch.timeout: expected a number greater than 0, got -1",
        "27: rankng: unknown setting; did you mean 'ranking'?",
    ]


def test_the_cli_prints_one_line_per_error_and_exits_2(tmp_path: Path, capsys) -> None:
    write_record(tmp_path / "records", "a.md", fields(1))
    config = tmp_path / "config.toml"
    config.write_text(BROKEN, encoding="utf-8")
    assert main(["build", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 9
    assert all(line.startswith(f"aggregator: config error: {config}:") for line in lines)
    assert not (tmp_path / "out").exists() and not (tmp_path / "feeds").exists()


def test_a_missing_key_is_reported_at_its_table(tmp_path: Path) -> None:
    text = '# news\n\n[site]\ntitle = "x"\n\n[[sources]]\nname = "nothing"\n'
    assert errors_of(tmp_path, text) == [
        "3: site.base_url: expected a non-empty string",
        "6: sources[1]: expected exactly one of 'path' or 'url'",
    ]
    assert errors_of(tmp_path, '[site]\ntitle = "x"\nbase_url = "https://x.example/"\n') == [
        " sources: expected at least one [[sources]] table"
    ]


def test_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, '[site]\ntitle = "x"\nbase_url = https://x.example/\n')
    assert error.startswith("3: (syntax): not valid TOML: ")


def test_key_lines_follow_toml() -> None:
    text = """\
title = "top"
[site]
"base url" = "x"
nested.deep = 1
description = \"\"\"
fake = "inside a string"
\"\"\"
[[sources]]  # the first
path = "a"
tracking = [
  "utm_*",
]
[[sources]]
url = "b"
[feeds.topics."A.I"]
max_items = 3
"""
    assert key_lines(text) == {
        "title": 1,
        "site": 2,
        'site."base url"': 3,
        "site.nested": 4,
        "site.nested.deep": 4,
        "site.description": 5,
        "sources": 8,
        "sources[1]": 8,
        "sources[1].path": 9,
        "sources[1].tracking": 10,
        "sources[2]": 13,
        "sources[2].url": 14,
        'feeds.topics."A.I"': 15,
        'feeds.topics."A.I".max_items': 16,
    }
