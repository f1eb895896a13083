"""newsboat, a real feed reader, shows every item of the feeds we build.

The output folder is served over HTTP on 127.0.0.1; newsboat reloads each feed with its
own urls file, config and cache (it keeps one copy of an item per guid across all feeds
in a cache, so one cache per feed), and the cache is read back with sqlite3.
"""

from __future__ import annotations

import functools
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest

from aggregator.config import load_config
from aggregator.pipeline import build

from .factories import CORPUS, ROOT, feed_paths, newsboat_reload

NEWSBOAT = shutil.which("newsboat")
pytestmark = pytest.mark.skipif(NEWSBOAT is None, reason="newsboat is not installed")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Build the bundled examples (and the corpus, where present) and serve them."""
    root = tmp_path_factory.mktemp("newsboat-site")
    work = tmp_path_factory.mktemp("newsboat-build")
    shutil.copytree(ROOT / "examples", work / "examples")
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    config = config.replace('output_dir = "feeds"', f'output_dir = "{root / "examples"}"')
    (work / "config.toml").write_text(config, encoding="utf-8")
    build(load_config(work / "config.toml"))
    corpus = CORPUS / "everyday-ai"
    if corpus.is_dir():
        (work / "corpus.toml").write_text(
            f'[site]\ntitle = "AI"\nbase_url = "https://news.example.org/ai/"\n'
            f'output_dir = "{root / "corpus"}"\n\n[[sources]]\npath = "{corpus}"\n\n'
            "[feeds]\nmax_items = 1000\n\n[ranking]\nmax_per_provider = 1000\n",
            encoding="utf-8",
        )
        build(load_config(work / "corpus.toml"))
    handler = functools.partial(QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def read_with_newsboat(url: str, home: Path) -> list[tuple[str, str]]:
    """(guid, title) of every item newsboat stored for `url`."""
    newsboat_reload(NEWSBOAT, url, home)
    with sqlite3.connect(home / "cache.db") as db:
        return list(db.execute("SELECT guid, title FROM rss_item WHERE feedurl = ?", (url,)))


def feeds_of(root: Path, site: str) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in feed_paths(root / site))


def check_feed(root: Path, base: str, relative: str, home: Path) -> None:
    ours = feedparser.parse((root / relative).read_bytes()).entries
    assert ours, relative
    stored = read_with_newsboat(base + relative, home)
    assert sorted(guid for guid, _ in stored) == sorted(entry.id for entry in ours)
    assert sorted(title for _, title in stored) == sorted(entry.title for entry in ours)


def test_newsboat_shows_every_item_of_every_example_feed(served, tmp_path: Path) -> None:
    root, base = served
    feeds = feeds_of(root, "examples")
    assert len(feeds) == 20
    for n, relative in enumerate(feeds):
        check_feed(root, base, relative, tmp_path / f"reader-{n}")


def test_newsboat_shows_every_item_of_the_corpus_feeds(served, tmp_path: Path) -> None:
    root, base = served
    if not (root / "corpus").is_dir():
        pytest.skip("corpus not found")
    feeds = ["corpus/rss.xml", "corpus/atom.xml"]
    topics = feeds_of(root, "corpus/topics")
    feeds += [topics[0], topics[-1]]  # the rest are subsets of the all-topics feeds
    for n, relative in enumerate(feeds):
        check_feed(root, base, relative, tmp_path / f"reader-{n}")
    assert len(feedparser.parse((root / "corpus" / "rss.xml").read_bytes()).entries) > 50
