"""Feed history: RFC 5005 archive documents, read back the way a reader reads them.

A series of builds pushes items out of a small feed; following `prev-archive` from the
current document (feedparser, as a reader would) must then find every story the feed
ever showed, each once, with the guid and dates it had when first seen.
"""

from __future__ import annotations

import calendar
import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.config import load_config
from aggregator.pipeline import build
from aggregator.report import BuildReport

from .factories import BASE_URL, fields, write_config, write_record

HISTORY = "{http://purl.org/syndication/history/1.0}"
SETTINGS = "[feeds]\nmax_items = 3\narchive = true\narchive_page_size = 2\n"


def stamp(struct: object) -> int:
    return calendar.timegm(struct)  # type: ignore[arg-type]


def add(records: Path, n: int, **overrides: object) -> None:
    # A newer story ranks higher: each new pair pushes the oldest items out of the feed.
    data = fields(n, publishedDateTime=f"2026-11-{n:02d}T08:00:00Z", **overrides)
    write_record(records, f"story-{n:02d}.md", data)


def seen_in(output: Path, name: str, seen: dict[str, tuple[int, int]]) -> None:
    """Remember each item of the current document as first seen: guid -> dates."""
    for entry in feedparser.parse((output / name).read_bytes()).entries:
        dates = (stamp(entry.published_parsed), stamp(entry.updated_parsed))
        seen.setdefault(entry.id, dates)


def link(parsed: feedparser.FeedParserDict, rel: str) -> str | None:
    hrefs = [item.href for item in parsed.feed.get("links", []) if item.rel == rel]
    assert len(hrefs) <= 1, (rel, hrefs)
    return hrefs[0] if hrefs else None


def walk_archive(output: Path, name: str) -> list[feedparser.FeedParserDict]:
    """Every archive document, newest first, reached from the current document."""
    current_url = BASE_URL + name
    documents = []
    href = link(feedparser.parse((output / name).read_bytes()), "prev-archive")
    while href is not None:
        assert href.startswith(BASE_URL)
        data = (output / href.removeprefix(BASE_URL)).read_bytes()
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        root = etree.fromstring(data)
        assert root.find(f".//{HISTORY}archive") is not None
        assert link(parsed, "self") == href
        if root.find(f".//{HISTORY}complete") is None:
            assert link(parsed, "current") == current_url
        documents.append(parsed)
        older = link(parsed, "prev-archive")
        if older is not None:  # the older document links back
            back = feedparser.parse((output / older.removeprefix(BASE_URL)).read_bytes())
            assert link(back, "next-archive") == href
        href = older
        assert len(documents) < 100, "prev-archive links go round in a loop"
    return documents


def archive_bytes(output: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((output / "archive").glob("*.xml"))}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    records = tmp_path / "records"
    config = write_config(tmp_path, ["records"], SETTINGS)
    yield records, config, tmp_path / "out"


def test_following_the_archive_finds_every_story_once_with_its_first_dates(site) -> None:
    records, config_path, output = site
    config = load_config(config_path)
    seen: dict[str, tuple[int, int]] = {}
    final: dict[str, bytes] = {}  # archive files that have a successor: never change again
    for n in (1, 2, 3):
        add(records, n)
    steps: list[BuildReport] = []
    for step in range(6):
        if step:
            add(records, 2 + 2 * step)
            add(records, 3 + 2 * step)
        if step == 4:
            # A story still in the feed is edited: the feed shows its new date, the
            # archive keeps the one it was first seen with (and the full path runs).
            add(records, 9, updatedDateTime="2026-12-20T10:00:00Z", title="Story nine, edited")
        steps.append(build(config, full=step == 3))
        seen_in(output, "atom.xml", seen)
        if step == 4:
            titles = [e.title for e in feedparser.parse(output / "atom.xml").entries]
            assert "Story nine, edited" in titles
        now = archive_bytes(output)
        for name, data in final.items():
            assert now[name] == data, f"{name} changed after it was complete"
        pages = len(now) // 2
        final.update({k: v for k, v in now.items() if not k.endswith(f"-{pages}.xml")})
        written = {p.name for p in steps[-1].written_paths if p.parent.name == "archive"}
        newest = {f"rss-{pages}.xml", f"atom-{pages}.xml"}
        assert written <= newest | {f"rss-{pages - 1}.xml", f"atom-{pages - 1}.xml"}
    assert len(seen) == 13 and len(feedparser.parse(output / "rss.xml").entries) == 3
    for name in ("rss.xml", "atom.xml"):
        documents = walk_archive(output, name)
        assert len(documents) == 7  # 13 stories, 2 a page
        entries = [entry for doc in reversed(documents) for entry in doc.entries]
        assert [entry.id for entry in entries] == list(seen)  # each once, first seen first
        for entry in entries:
            published, updated = seen[entry.id]
            assert stamp(entry.published_parsed) == published
            if name == "atom.xml":  # RSS has no updated date
                assert stamp(entry.updated_parsed) == updated
        assert "Story nine, edited" not in [entry.title for entry in entries]
    # An incremental series of builds made exactly what a full build makes.
    assert build(config, full=True).written == 0


def test_a_single_archive_document_is_complete(site) -> None:
    records, config_path, output = site
    for n in (1, 2):
        add(records, n)
    build(load_config(config_path))
    for name in ("rss.xml", "atom.xml"):
        [document] = walk_archive(output, name)
        # Stories first seen in the same build are archived in feed order.
        feed = feedparser.parse(output / name).entries
        assert [entry.id for entry in document.entries] == [entry.id for entry in feed]
    root = etree.fromstring((output / "archive" / "atom-1.xml").read_bytes())
    assert root.find(f"{HISTORY}complete") is not None


def test_without_the_setting_there_is_no_archive(tmp_path: Path) -> None:
    add(tmp_path / "records", 1)
    build(load_config(write_config(tmp_path, ["records"])))
    assert not (tmp_path / "out" / "archive").exists()
    assert b"prev-archive" not in (tmp_path / "out" / "rss.xml").read_bytes()


NEWSBOAT = shutil.which("newsboat")


@pytest.mark.skipif(NEWSBOAT is None, reason="newsboat is not installed")
def test_newsboat_reads_an_archive_document(site, tmp_path: Path) -> None:
    from .test_newsboat import QuietHandler, read_with_newsboat

    records, config_path, output = site
    for n in range(1, 8):
        add(records, n)
    build(load_config(config_path))
    handler = functools.partial(QuietHandler, directory=str(output))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        for n, relative in enumerate(["archive/rss-1.xml", "archive/atom-1.xml"]):
            ours = feedparser.parse(output / relative).entries
            stored = read_with_newsboat(base + relative, tmp_path / f"reader-{n}")
            assert sorted(guid for guid, _ in stored) == sorted(e.id for e in ours)
            assert len(stored) == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_histories_written_before_the_one_codec_are_still_read(tmp_path: Path) -> None:
    """Archives are not a cache: an upgrade reads what the previous release wrote."""
    import marshal

    from aggregator.archive import HISTORY_KEY, NAMESPACE, Histories, History
    from aggregator.state.sqlite import SqliteStore

    with SqliteStore.open(tmp_path / "state.db") as store:
        store.put(NAMESPACE, HISTORY_KEY + "topics/ai", marshal.dumps((("a", "b"), (("a",),))))
        assert Histories(store).load("topics/ai") == History(("a", "b"), (("a",),))
        store.put(NAMESPACE, HISTORY_KEY, History(("c",), ()).to_bytes())
        assert Histories(store).load("") == History(("c",), ())
