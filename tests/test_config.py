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


SITE = '[site]\ntitle = "News"\nbase_url = "https://news.example.org/"\n'


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ('output_url = "gs://news/site"', "4: site.output_url: expected s3://BUCKET or "
         "s3://BUCKET/PREFIX (S3 or an S3-compatible store), got 'gs://news/site'"),
        ('output_url = "s3://News_Bucket"', "4: site.output_url: expected s3://BUCKET or "
         "s3://BUCKET/PREFIX (S3 or an S3-compatible store); 'News_Bucket' is not a bucket "
         "name (3-63 lowercase letters, digits, dots and hyphens)"),
        ('output_url = "s3://news/a/../b"', "4: site.output_url: expected s3://BUCKET or "
         "s3://BUCKET/PREFIX (S3 or an S3-compatible store); the prefix '/a/../b' has an "
         "empty, '.' or '..' part"),
        ('output_url = "s3://news/site?x=1"', "4: site.output_url: expected s3://BUCKET or "
         "s3://BUCKET/PREFIX (S3 or an S3-compatible store) with no query or fragment, "
         "got 's3://news/site?x=1'"),
        ('output_url = "s3://news"\noutput_options = "http://127.0.0.1:9000"',
         "5: site.output_options: expected a table of s3fs settings, e.g. "
         '{ endpoint_url = "https://s3.example.net" }'),
        ('output_url = "s3://news"\ncache_control = "max-age=60\\r\\nX-Evil: 1"',
         "5: site.cache_control: expected a Cache-Control header value in printable ASCII, "
         "got 'max-age=60\\r\\nX-Evil: 1'"),
        ('cache_control = "max-age=60"',
         "4: site.cache_control: only used with site.output_url; set it, or remove this key"),
    ],
)  # fmt: skip
def test_object_storage_settings_are_checked(tmp_path: Path, lines: str, expected: str) -> None:
    text = f'{SITE}{lines}\n\n[[sources]]\npath = "records"\n'
    (tmp_path / "records").mkdir()
    assert errors_of(tmp_path, text) == [expected]


def test_object_storage_settings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'{SITE}output_url = "s3://news.example/feeds/v1/"\n'
                    'output_options = { endpoint_url = "http://127.0.0.1:9000", anon = false }\n'
                    '\n[[sources]]\npath = "records"\n', encoding="utf-8")  # fmt: skip
    (tmp_path / "records").mkdir()
    storage = load_config(path).storage
    assert storage is not None
    assert (storage.url, storage.bucket, storage.prefix) == ("s3://news.example/feeds/v1",
                                                             "news.example", "feeds/v1")
    assert storage.object_url("topics/ai/rss.xml") == "s3://news.example/feeds/v1/topics/ai/rss.xml"
    assert storage.options == {"endpoint_url": "http://127.0.0.1:9000", "anon": False}
    assert storage.cache_control == "max-age=300"
    assert "127.0.0.1" not in repr(storage), "options (credentials, maybe) are not shown"
    assert load_config(write_plain(tmp_path)).storage is None


def write_plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.toml"
    path.write_text(f'{SITE}\n[[sources]]\npath = "records"\n', encoding="utf-8")
    return path
