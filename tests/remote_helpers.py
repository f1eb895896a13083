"""Shared pieces for the remote-source tests: a real HTTP server on 127.0.0.1 and documents."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import feedparser
from werkzeug import Request, Response

from .conftest import CORPUS, ROOT, running_server  # noqa: F401 (re-exported)
from .factories import write_config_toml

# Fast, test-sized fetch settings: tiny backoff, short timeouts; the test servers
# listen on 127.0.0.1, which a real build refuses by default.
FAST_FETCH = """
[fetch]
allow_private_addresses = true
timeout = 2.0
retries = 1
backoff = 0.01
max_retry_after = 0.05
concurrency = 4
"""


def corpus_dir() -> Path | None:
    """The shared corpus beside the repository (a worktree sits one level deeper)."""
    for candidate in (CORPUS, ROOT.parent.parent / "shared" / "corpus"):
        if candidate.is_dir():
            return candidate
    return None


def record(n: int, *, host: str = "news.example.com", topic: str = "AI", **extra: Any) -> dict:
    data = {
        "title": f"Story number {n}",
        "webUrl": f"https://{host}/story/{n}",
        "publishedDateTime": f"2024-03-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
        "excerpt": f"What happened in story {n}.",
        "topics": [topic],
        "provider": {"name": "Example News", "domain": host},
    }
    data.update(extra)
    return data


def seed_page(items: list[dict], page: int, next_page: str | int | None) -> bytes:
    """A page of the seed system's JSON API."""
    body = {"title": "News", "path": "/news/", "page": page, "value": items, "nextPage": next_page}
    return json.dumps(body, indent=2).encode()


def rss_feed(
    items: list[dict], *, title: str = "Example Feed", link: str = "https://feed.example.net/"
) -> bytes:
    entries = []
    for item in items:
        categories = "".join(f"<category>{t}</category>" for t in item.get("topics", []))
        image = item.get("image")
        media = (
            f'<media:content url="{image}" medium="image" width="640" height="360"/>'
            if image
            else ""
        )
        published = item["publishedDateTime"].replace("Z", "+00:00")
        pub_date = format_datetime(datetime.fromisoformat(published))
        entries.append(
            f"<item><title>{item['title']}</title><link>{item['webUrl']}</link>"
            f"<guid>{item['webUrl']}</guid><description>{item.get('excerpt', '')}</description>"
            f"<pubDate>{pub_date}</pubDate>{categories}{media}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        f"<title>{title}</title><link>{link}</link><description>d</description>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


def conditional(
    body: bytes, content_type: str, served: list[str] | None = None
) -> Callable[[Request], Response]:
    """A handler answering like a static web server: ETag, Last-Modified and 304."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    modified = "Mon, 04 Mar 2024 10:00:00 GMT"

    def handle(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            status, data = 304, b""
        else:
            status, data = 200, body
        if served is not None:
            served.append(f"{status} {request.path}")
        return Response(
            data, status, {"ETag": etag, "Last-Modified": modified, "Content-Type": content_type}
        )

    return handle


def write_config(tmp_path: Path, sources: str, extra: str = FAST_FETCH) -> Path:
    """A config whose `[[sources]]` tables are `sources` (TOML text)."""
    return write_config_toml(tmp_path, f"\n{sources}\n{extra}")


def url_source(url: str, **settings: Any) -> str:
    lines = [f'[[sources]]\nurl = "{url}"']
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def feed_links(path: Path) -> set[str]:
    """Every item link in a written RSS file, read back with feedparser."""
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {entry.link for entry in parsed.entries}


def feed_entries(path: Path) -> list[Any]:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return list(parsed.entries)
