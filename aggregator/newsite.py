"""`aggregator init [DIR]`: a new site that builds as it is, like `hugo new site`.

It writes a `config.toml` in which every table is present and explained (the optional
ones commented out, holding their defaults), one example record and a `.gitignore`.
Nothing that already exists is overwritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from aggregator.config import (
    DEFAULT_NEXT_PAGE,
    ClusteringConfig,
    FeedsConfig,
    FetchConfig,
    LimitsConfig,
    RankingConfig,
)

CONFIG_NAME = "config.toml"
RECORDS_DIR = "records"
EXAMPLE_NAME = "2026-01-05-welcome-to-your-news-site.md"
GITIGNORE_NAME = ".gitignore"


class SiteExists(Exception):
    """`init` would overwrite a file; nothing was written."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = ", ".join(str(path) for path in paths)
        super().__init__(f"{names}: already there; nothing was written (init never overwrites)")


@dataclass(frozen=True, slots=True)
class NewSite:
    folder: Path
    files: tuple[Path, ...]  # config, example record, .gitignore


def create_site(folder: Path, title: str | None = None) -> NewSite:
    """Write a new site into `folder` (made if missing); SiteExists if a file is there,
    OSError if the folder cannot be written."""
    files = {
        folder / CONFIG_NAME: config_text(title or _title_for(folder)),
        folder / RECORDS_DIR / EXAMPLE_NAME: EXAMPLE_RECORD,
        folder / GITIGNORE_NAME: GITIGNORE,
    }
    present = [path for path in files if os.path.lexists(path)]
    if present:
        raise SiteExists(present)
    written: list[Path] = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8", newline="\n") as out:  # "x": never clobber
                out.write(text)
            written.append(path)
    except BaseException:
        for path in written:  # all or nothing: a half-made site would confuse the rerun
            path.unlink(missing_ok=True)
        raise
    return NewSite(folder, tuple(files))


def _title_for(folder: Path) -> str:
    name = folder.resolve().name.replace("-", " ").replace("_", " ").strip()
    return f"{name[:1].upper()}{name[1:]} news" if name else "My news"


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def config_text(title: str) -> str:
    fetch, limits, ranking = FetchConfig(), LimitsConfig(), RankingConfig()
    clustering, feeds = ClusteringConfig(), FeedsConfig()
    return _align(f"""\
# aggregator configuration: `aggregator build` reads it from the current folder
# (or pass --config PATH). Paths are relative to this file. Every table is here: the
# optional ones are commented out and show their defaults; remove the "# " to change one.

[site]
title = {_toml(title)}
base_url = "https://news.example.org/"  # the public address of the output folder
output_dir = "feeds"  # where the feeds and pages are written
description = "Ranked news by topic."  # shown on the pages and in the feeds
language = "en"
# author = "News Desk"  # the feeds' author; default: the title
# websub_hub = "https://pubsubhubbub.appspot.com/"  # announce changed feeds to a hub
# templates = "templates"  # a folder of your own Jinja2 page templates
# Also upload the output to S3 or an S3-compatible store (pip install 'aggregator[s3]';
# credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE):
# output_url = "s3://my-bucket/news"
# output_options = {{ endpoint_url = "https://s3.example.net" }}  # s3fs settings
# cache_control = "max-age=300"  # the Cache-Control header of every object

# One [[sources]] table per source: a folder of record files (Markdown with YAML front
# matter, .yaml, .yml or .json), read recursively ...
[[sources]]
path = "{RECORDS_DIR}"
# name = "My records"  # shown in reports; default: the path
# exclude = ["drafts/**"]  # globs of files not to read (also: include)
# min_quality = 0  # leave out records below this (also: min_heat,
#                                         #   [sources.keep] and [sources.drop] as below)

# ... or a remote feed or JSON API, fetched like a careful feed reader does.
# [[sources]]
# url = "https://example.org/api/news/index.json"
# name = "Example API"  # default: the URL
# topics = ["Example"]  # added to every record from this source
# quality = 50  # for records that carry none
# heat = 50
# max_pages = 10  # pages followed through nextPage
# next_page = "{DEFAULT_NEXT_PAGE}"  # where page {{n}} lives, beside page 1
# timeout = 10  # seconds; overrides [fetch] timeout

# How records are read.
# [records]
# default_quality = 50  # for records without quality (or -1, "unknown")
# default_heat = 50  # likewise for heat
# excerpt_html = "sanitize"  # "sanitize" (allow-list) or "text" (no markup)
#   tracking_params, a list: the query parameters dropped from canonical links
#   (default: utm_*, fbclid, gclid and 20 more; see the README)

# Copies of one story under different links become one item.
# [clustering]
# enabled = {_toml_bool(clustering.enabled)}
# window_hours = {clustering.window_hours}  # copies lie within this time of the first
# title_similarity = {clustering.title_similarity}  # how alike their titles are, 0-100

# Stories are ranked by log2(1 + quality_weight * quality + heat_weight * heat)
#   + published / doubling_hours (newer and better first), plus coverage.
# [ranking]
# quality_weight = {ranking.quality_weight}
# heat_weight = {ranking.heat_weight}
# doubling_hours = {ranking.doubling_hours}  # this much newer counts as twice as good
# coverage_weight = {ranking.coverage_weight}  # per doubling of the outlets covering it
# provider_penalty = {ranking.provider_penalty}  # each earlier item from one provider costs
# max_per_provider = {ranking.max_per_provider}  # a hard cap per feed; 0 = none

# [feeds]
# max_items = {feeds.max_items}  # items in each feed (the pages show the same)
# archive = {_toml_bool(feeds.archive)}  # RFC 5005 archives: a feed's whole history
# archive_page_size = {feeds.archive_page_size}  # stories per archive document
#   [feeds.topics."AI"] (a topic's name or slug) with max_items, title, description or
#   hidden = true: settings of one topic's feed

# Leave stories out of some feeds (words, or /regular expressions/).
# [[filters]]
# topics = ["Example"]  # these topics' feeds; default: every feed
# [filters.drop]
# title = ["sponsored"]  # also: excerpt, provider, topic, link; and keep

# After each build, POST each changed feed's new items (JSON Feed) here.
# [[webhooks]]
# url = "https://hooks.example.org/news"

# Remote sources: how they are fetched.
# [fetch]
# concurrency = {fetch.concurrency}
# timeout = {fetch.timeout}  # seconds, to connect and for each read
# retries = {fetch.retries}  # after a connection error, 5xx or 429
# backoff = {fetch.backoff}  # seconds before the first retry; doubles
# max_retry_after = {fetch.max_retry_after}  # a server's Retry-After is honoured up to this
# max_bytes = {fetch.max_bytes}  # per response, after decompression
# max_redirects = {fetch.max_redirects}
# request_deadline = {fetch.request_deadline}  # seconds for one whole request
# source_deadline = {fetch.source_deadline}  # seconds for all pages of one source
# build_deadline = {fetch.build_deadline}  # seconds for fetching every source
# allow_private_addresses = {_toml_bool(fetch.allow_private_addresses)}  # also loopback, private
# user_agent = {_toml(fetch.user_agent)}
# interval = {fetch.interval}  # fetch workers: seconds between fetches of a source
# lease_seconds = {fetch.lease_seconds}  # a worker's claim on a source lasts this long
# max_backoff = {fetch.max_backoff}  # longest wait after failures, Retry-After, max-age

# Many machines: fetch workers and the builder share their state in PostgreSQL
#   ([state] url = "postgresql://news@db.example.org/news"; see the README, Deployment).

# Records are untrusted: what a file may hold.
# [limits]
# max_file_bytes = {limits.max_file_bytes}
# max_yaml_depth = {limits.max_yaml_depth}
# max_yaml_aliases = {limits.max_yaml_aliases}
# max_items_per_source = {limits.max_items_per_source}
# max_title_chars = {limits.max_title_chars}  # longer titles are cut at a word
# max_excerpt_chars = {limits.max_excerpt_chars}
# max_topics_per_record = {limits.max_topics_per_record}
# max_url_chars = {limits.max_url_chars}  # longer article links reject the record

# [build]
# state_path = ".aggregator/state.db"  # cache and lock; safe to delete
# workers = 0  # parsing and rendering processes; 0 = one per core
# lock_timeout = 30  # seconds to wait for another build to finish
# max_shrink = 0.5  # a source losing more of its records is held
""")


COMMENT_COLUMN = 42  # where the explanations of settings start, as in a hand-kept file


def _align(text: str) -> str:
    """Line up the comments after settings, whatever the widths of the values."""
    lines = []
    for line in text.splitlines():
        setting, gap, comment = line.partition("  # ")
        if gap and setting.strip() and not setting.startswith("#   "):
            line = f"{setting.rstrip():<{COMMENT_COLUMN - 1}} # {comment}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _toml_bool(value: bool) -> str:
    return "true" if value else "false"


EXAMPLE_RECORD = """\
---
title: "Welcome to your news site"
webUrl: "https://news.example.org/welcome/"
publishedDateTime: 2026-01-05T09:00:00Z
excerpt: "This is an example record. Put one file like it in records/ for every story,
  then run aggregator build: each topic gets its own RSS, Atom and JSON feed."
type: article
quality: 60
heat: 40
provider:
  name: Example Desk
  domain: news.example.org
topics:
  - Getting started
---
The text after the front matter is ignored: only the fields above are published.
"""


GITIGNORE = """\
# What `aggregator build` writes: publish this folder, do not commit it.
/feeds/
# The build's cache and lock (safe to delete: the next build reads everything again).
/.aggregator/
"""
