"""Two real feed readers across a rebuild: they show exactly the new stories, none again.

newsboat (Debian) and lemon24/reader (PyPI) read the feeds over HTTP on 127.0.0.1. After
the first read every item is marked read; then records are added (two new stories, a
later copy of a story already in the feed, and a heat edit) and the site is rebuilt. The
readers must then show the two new stories as new, and nothing else: the copy joins its
story under the story's guid, and an edit changes no guid.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.pipeline import build

from .conftest import preview
from .factories import fields, newsboat_reload, write_config, write_record

NEWSBOAT = shutil.which("newsboat")


def outlet(name: str) -> dict[str, str]:
    return {"name": name, "domain": f"{name.lower()}.example"}


STORIES = [
    ("Grid battery pilot passes its first winter test", "Energywire", 9),
    ("Lunar relay satellite begins beaming data from the far side", "Spacewire", 10),
    ("Warehouse operator deploys 500 humanoid robots in pilot", "Robowire", 11),
]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, object, str]]:
    records = tmp_path / "records"
    for n, (title, name, hour) in enumerate(STORIES, start=1):
        when = f"2026-11-10T{hour:02d}:00:00Z"
        data = fields(n, title=title, provider=outlet(name), publishedDateTime=when)
        write_record(records, f"s{n}.md", data)
    config = load_config(write_config(tmp_path, ["records"]))
    build(config)
    # Our own preview server: its ETags follow the bytes, so a rebuild within the same
    # second is not mistaken for "not modified" (as a Last-Modified date alone would be).
    with preview(config.site.output_dir) as server:
        yield records, config, server.url


def change_the_records(records: Path) -> None:
    """Two new stories, a later copy of story 1 from another outlet, a heat edit of 2."""
    write_record(records, "new-1.md", fields(11, title="Open hardware robot arm kit ships",
                                             provider=outlet("Makerwire"),
                                             publishedDateTime="2026-11-11T08:00:00Z"))  # fmt: skip
    write_record(records, "new-2.md", fields(12, title="Orbital debris tracker opens its catalog",
                                             provider=outlet("Spacewire"),
                                             publishedDateTime="2026-11-11T09:00:00Z"))  # fmt: skip
    write_record(records, "copy.md", fields(13, title=STORIES[0][0], provider=outlet("Gridnews"),
                                            quality=95, heat=95,
                                            publishedDateTime="2026-11-10T15:00:00Z"))  # fmt: skip
    edited = records / "s2.md"
    edited.write_text(edited.read_text("utf-8").replace("heat: 50", "heat: 97"), "utf-8")
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


NEW_TITLES = {"Open hardware robot arm kit ships", "Orbital debris tracker opens its catalog"}


@pytest.mark.skipif(NEWSBOAT is None, reason="newsboat is not installed")
@pytest.mark.parametrize("name", ["rss.xml", "atom.xml"])
def test_newsboat_shows_only_the_new_stories_after_a_rebuild(site, tmp_path, name) -> None:
    records, config, base = site
    home = tmp_path / "newsboat"
    newsboat_reload(NEWSBOAT, base + name, home)
    with sqlite3.connect(home / "cache.db") as db:
        assert db.execute("SELECT count(*) FROM rss_item").fetchone() == (3,)
        db.execute("UPDATE rss_item SET unread = 0")
    change_the_records(records)
    build(config)
    newsboat_reload(NEWSBOAT, base + name, home)
    with sqlite3.connect(home / "cache.db") as db:
        unread = {title for (title,) in db.execute("SELECT title FROM rss_item WHERE unread = 1")}
        total = db.execute("SELECT count(*) FROM rss_item").fetchone()[0]
    assert unread == NEW_TITLES
    assert total == 5  # the copy and the edit made no item of their own


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml", "feed.json"])
def test_lemon24_reader_shows_only_the_new_stories_after_a_rebuild(site, tmp_path, name) -> None:
    from reader import make_reader

    records, config, base = site
    reader = make_reader(str(tmp_path / "reader.sqlite"))
    try:
        url = base + name
        reader.add_feed(url)
        reader.update_feeds(scheduled=False)  # now, not when next due
        entries = list(reader.get_entries())
        assert len(entries) == 3
        for entry in entries:
            reader.mark_entry_as_read(entry)
        change_the_records(records)
        build(config)
        reader.update_feeds(scheduled=False)  # now, not when next due
        unread = {entry.title for entry in reader.get_entries(read=False)}
        assert unread == NEW_TITLES
        assert len(list(reader.get_entries())) == 5
        # the story the copy joined is still one entry, now showing the better copy's text
        [story] = [e for e in reader.get_entries() if e.title == STORIES[0][0]]
        assert story.read
    finally:
        reader.close()
