"""The `changes` path (aggregator/delta.py): a few changed files applied to the last
build's story table, with the bytes and counts of a full build, and the full path taken
whenever the table cannot be trusted. (The random sequences against full builds are in
test_incremental.py.)"""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.pipeline import build
from aggregator.state.sqlite import SqliteStore
from aggregator.state.stories import STORIES, StoryTable
from tests.factories import fields, full_build_elsewhere, tree_bytes, write_config, write_record

TOPICS = (["AI"], ["Space"], ["AI", "Climate"], ["Robots"])


def site(tmp_path: Path, count: int = 12, extra: str = ""):
    records = tmp_path / "records"
    for n in range(1, count + 1):
        write_record(records, f"record-{n:02d}.md",
                     fields(n, topics=TOPICS[n % 4], heat=n * 7 % 100,
                            publishedDateTime=f"2026-11-{n:02d}T08:00:00Z"))  # fmt: skip
    config = load_config(write_config(tmp_path, [records], "[feeds]\nmax_items = 3\n" + extra))
    return records, config


def copy_of_3() -> dict:
    """Story 3 under another link from another outlet, three hours later: a copy."""
    return fields(3, topics=["AI"], webUrl="https://copies.example/story-3/",
                  provider={"name": "Copies", "domain": "copies.example"},
                  publishedDateTime="2026-11-03T11:00:00Z")  # fmt: skip


def bump(path: Path, data: dict) -> None:
    write_record(path.parent, path.name, data)
    stamp = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))


def same_as_full(config, tmp_path: Path, report) -> None:
    fresh = tmp_path / "fresh"
    full = full_build_elsewhere(config, fresh)
    assert tree_bytes(config.site.output_dir) == tree_bytes(fresh)
    for name in ("records", "items", "duplicates", "unpublished", "rejected", "files"):
        assert getattr(report, name) == getattr(full, name), name


def assert_rankings_as_from_scratch(config) -> None:
    """The rankings the story table stores are those of ranking its keys from scratch."""
    from aggregator.rank import rank_stories

    with SqliteStore.open(config.build.state_path) as store:
        table = StoryTable.load(store)
    assert table is not None and table.rankings is not None
    keys = [table.key(guid) for guid in table.guids]
    fresh = rank_stories([key for key in keys if key is not None])
    assert (table.rankings.order, table.rankings.by_topic, table.rankings.spellings) == (
        fresh.order, fresh.by_topic, fresh.spellings)  # fmt: skip


def test_a_heat_edit_applies_to_the_table_and_renders_only_its_feeds(tmp_path: Path) -> None:
    records, config = site(tmp_path)
    build(config)
    bump(records / "record-05.md", fields(5, topics=["Space"], heat=99,
                                          publishedDateTime="2026-11-05T08:00:00Z"))  # fmt: skip
    report = build(config)
    assert (report.redo, report.parsed) == ("changes", 1)
    # at most the all-topics feed and Space (RSS, Atom, JSON Feed and page each), the
    # front page and the OPML list; the other topics' files are not even rendered
    assert 0 < report.rendered <= 2 * 4 + 2
    output = config.site.output_dir
    written = {path.relative_to(output).as_posix() for path in report.written_paths}
    assert all(not name.startswith("topics/") or name.startswith("topics/space/")
                           for name in written), written  # fmt: skip
    same_as_full(config, tmp_path, report)


def test_a_copy_under_another_link_joins_its_story_and_leaves_with_its_file(
    tmp_path: Path,
) -> None:
    records, config = site(tmp_path)
    build(config)
    write_record(records, "copy-of-3.md", copy_of_3())
    joined = build(config)
    assert (joined.redo, joined.duplicates) == ("changes", 1)
    robots = (config.site.output_dir / "topics" / "robots" / "rss.xml").read_text()
    assert "copies.example/story-3" in robots  # listed as a copy of story 3
    same_as_full(config, tmp_path, joined)
    (records / "copy-of-3.md").unlink()
    left = build(config)
    assert (left.redo, left.duplicates) == ("changes", 0)
    same_as_full(config, tmp_path, left)


@pytest.mark.parametrize("kept", [True, False], ids=["briefs kept", "state without briefs"])
def test_clustering_around_a_change_reads_the_briefs_the_story_table_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    """The stories around an added copy are clustered again from the briefs the story
    table keeps by day, not decoded from the parse cache; a state without them (written
    before they were kept) reads the parse cache and builds the same bytes."""
    import aggregator.delta as delta
    from aggregator.state.stories import BRIEFS

    records, config = site(tmp_path)
    build(config)
    if not kept:
        with SqliteStore.open(config.build.state_path) as store:
            store.delete_many(BRIEFS, list(store.keys(BRIEFS)))
    decoded: list[int] = []
    decode = delta.decode_record_values

    def counted(data):  # type: ignore[no-untyped-def]
        decoded.append(1)
        return decode(data)

    monkeypatch.setattr(delta, "decode_record_values", counted)
    write_record(records, "copy-of-3.md", copy_of_3())
    joined = build(config)
    assert (joined.redo, joined.duplicates) == ("changes", 1)
    assert (len(decoded) == 0) is kept, decoded
    same_as_full(config, tmp_path, joined)
    decoded.clear()
    (records / "copy-of-3.md").unlink()
    left = build(config)
    assert (left.redo, left.duplicates) == ("changes", 0)
    assert (len(decoded) == 0) is kept  # (a day without them is not made up half-way)
    same_as_full(config, tmp_path, left)


def test_problems_of_a_changed_file_replace_its_old_ones_in_file_order(tmp_path: Path) -> None:
    records, config = site(tmp_path)
    write_record(records, "record-00.md", fields(0, title=None))
    build(config)
    bump(records / "record-07.md", fields(7, webUrl="not a link"))
    report = build(config)
    assert report.redo == "changes"
    assert [Path(p.origin).name for p in report.problems] == ["record-00.md", "record-07.md"]
    bump(records / "record-00.md", fields(0))
    fixed = build(config)
    assert [Path(p.origin).name for p in fixed.problems] == ["record-07.md"]
    same_as_full(config, tmp_path, fixed)


def test_many_changed_files_take_the_full_path(tmp_path: Path) -> None:
    records, config = site(tmp_path, count=120)
    build(config)
    for n in range(1, 111):  # over 100 files and over 5 % of them
        bump(records / f"record-{n:02d}.md" if n < 100 else records / f"record-{n}.md",
             fields(n, heat=1, topics=TOPICS[n % 4]))  # fmt: skip
    assert build(config).redo == "full"


def test_a_damaged_or_missing_table_takes_the_full_path(tmp_path: Path) -> None:
    records, config = site(tmp_path)
    build(config)
    with SqliteStore.open(config.build.state_path) as store:
        days = [key for key in store.keys(STORIES) if key.isdigit()]
        store.put(STORIES, days[0], b"\x03damaged")
    bump(records / "record-02.md", fields(2, heat=3, topics=TOPICS[2]))
    report = build(config)
    assert report.redo == "full"
    same_as_full(config, tmp_path, report)
    with SqliteStore.open(config.build.state_path) as store:
        assert StoryTable.load(store) is not None  # the full build wrote it again
        StoryTable.forget(store)
    bump(records / "record-02.md", fields(2, heat=4, topics=TOPICS[2]))
    assert build(config).redo == "full"


@pytest.mark.parametrize("damage", ["gone", "damaged", "another day's"])
def test_a_day_whose_files_the_state_lacks_takes_the_full_path(
    tmp_path: Path, damage: str
) -> None:
    """The files of a changed story's day are read when the change needs them; a day
    not stored, damaged, or of another count of stories makes the build a full one."""
    from aggregator.state.stories import STORY_FILES, _deflated

    records, config = site(tmp_path)
    build(config)
    with SqliteStore.open(config.build.state_path) as store:
        day = sorted(store.keys(STORY_FILES), key=int)[1]  # record-02's (one a day)
        if damage == "gone":
            store.delete_many(STORY_FILES, [day])
        else:
            store.put(STORY_FILES, day, b"\x03damaged" if damage == "damaged"
                      else _deflated([("file:x/a.md",), ("file:x/b.md",)]))  # fmt: skip
    bump(records / "record-02.md", fields(2, heat=3, topics=["Elsewhere"],
                                          publishedDateTime="2026-11-02T08:00:00Z"))  # fmt: skip
    report = build(config)
    assert report.redo == "full"
    same_as_full(config, tmp_path, report)


COLUMNS = ("times", "guids", "leaders", "scores", "published", "providers", "topics", "failed")


def test_the_table_round_trips_through_the_store(tmp_path: Path) -> None:
    _, config = site(tmp_path)
    build(config)
    with SqliteStore.open(config.build.state_path) as store:
        table = StoryTable.load(store)
        assert table is not None and len(table.guids) == 12 and table.shown == 12
        assert table.times == sorted(table.times)
        table.save(store, everything=True)
        again = StoryTable.load(store)
        assert again is not None
        assert again.files == [None] * 12  # read by day, when a build needs them
        files = [again.files_of(position) for position in range(12)]
    assert files == [table.files_of(position) for position in range(12)]
    assert all(len(keys) == 1 and keys[0].endswith(".md") for keys in files)
    assert again.rankings is not None and table.rankings is not None
    assert [getattr(again, name) for name in COLUMNS] == [getattr(table, name) for name in COLUMNS]
    assert (again.rankings.order, again.rankings.by_topic, again.rankings.spellings) == (
        table.rankings.order, table.rankings.by_topic, table.rankings.spellings)  # fmt: skip
    assert [again.key(guid) for guid in again.guids] == [table.key(guid) for guid in table.guids]


def test_a_loaded_table_reads_the_files_of_a_day_only_when_asked(tmp_path: Path) -> None:
    _, config = site(tmp_path)
    build(config)
    with SqliteStore.open(config.build.state_path) as store:
        table = StoryTable.load(store)
        assert table is not None
        position = 4  # the stories of site() are one a day
        assert table.files_of(position)[0].endswith("record-05.md")
        assert [keys is not None for keys in table.files] == [n == position for n in range(12)]


def test_the_table_keeps_each_storys_brief_as_clustering_reads_it(tmp_path: Path) -> None:
    """Title, content words, provider and time of every story, exactly as brief_of the
    story's record gives them (a time with a fraction and an offset included)."""
    from aggregator.cluster import brief_of
    from tests.factories import make_record

    records, config = site(tmp_path)
    odd = {"publishedDateTime": "2026-11-05T10:30:00.25+02:00", "title": "An AI lab in Oslo"}
    write_record(records, "record-odd.md", fields(40, **odd))
    build(config)
    expected = {record.guid: brief_of(record) for record in
                [make_record(n, topics=TOPICS[n % 4], heat=n * 7 % 100,
                             publishedDateTime=f"2026-11-{n:02d}T08:00:00Z") for n in range(1, 13)]
                + [make_record(40, **odd)]}  # fmt: skip
    with SqliteStore.open(config.build.state_path) as store:
        table = StoryTable.load(store)
        assert table is not None
        kept = [table.brief_at(position) for position in range(len(table.guids))]
    assert {brief.guid: brief for brief in kept if brief is not None} == expected
    odd_brief = expected[make_record(40, **odd).guid]
    assert odd_brief.published.utcoffset() is not None and odd_brief.published.microsecond


def test_a_loaded_table_shares_its_providers_and_topics_as_stored(tmp_path: Path) -> None:
    """Values that repeat from story to story come back as one object: a topic list
    within a day, a provider's or topic's name in every day."""
    records = tmp_path / "records"
    for n in range(1, 9):  # two stories a day, all of one provider and one topic list
        write_record(records, f"record-{n}.md",
                     fields(n, topics=["AI", "Space"], provider={"name": "Wire"},
                            publishedDateTime=f"2026-11-{(n + 1) // 2:02d}T0{n % 2}:00:00Z"))
    config = load_config(write_config(tmp_path, [records]))  # fmt: skip
    build(config)
    with SqliteStore.open(config.build.state_path) as store:
        table = StoryTable.load(store)
    assert table is not None and len(table.guids) == 8
    assert len({id(provider) for provider in table.providers}) == 1
    assert len({id(topics) for topics in table.topics}) <= 4  # at most one a day
    assert len({id(name) for topics in table.topics if topics for name in topics}) == 2


def test_a_loaded_table_is_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    """A build pauses the cycle collector: a table its rank orders kept alive would
    wait for the next collection, which scans every one of its objects."""
    _, config = site(tmp_path)
    build(config)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with SqliteStore.open(config.build.state_path) as store:
            table = StoryTable.load(store)
        assert table is not None and table.rankings is not None
        rankings, gone = table.rankings, weakref.ref(table)
        assert list(rankings.order)  # read as guids through the table
        del table
        assert gone() is None
    finally:
        if was_enabled:
            gc.enable()


def test_rankings_stay_those_of_every_key_through_edits_additions_and_deletions(
    tmp_path: Path,
) -> None:
    """The stored rankings (places in the table, a topic's value kept while nothing
    came or went) are after each build what ranking every story from scratch gives."""
    records, config = site(tmp_path)
    build(config)
    steps = [
        lambda: bump(records / "record-03.md", fields(3, heat=99, topics=TOPICS[3])),
        lambda: bump(records / "record-05.md", fields(5, heat=1, topics=TOPICS[1])),
        lambda: (records / "record-07.md").unlink(),
        lambda: write_record(records, "record-20.md", fields(20, heat=50, topics=TOPICS[2])),
        lambda: bump(records / "record-09.md", fields(9, heat=98, topics=TOPICS[0])),
    ]
    for step in steps:
        step()
        assert build(config).redo == "changes"
        assert_rankings_as_from_scratch(config)


def test_rankings_edited_in_place_stay_those_of_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heat, quality and topic edits move no story in the table: the stored places are
    then read and edited as places (PlacedGuids), every story found by its time, its
    cluster or its rank order, never by an index of every guid. A `published` flip
    takes a story out of the table or puts it back (the rank orders become guids
    first). Either way they must be what ranking every story from scratch gives."""
    records, config = site(tmp_path)
    build(config)
    indexed: list[int] = []
    index = StoryTable._index

    def counted(table: StoryTable) -> dict[str, int]:
        indexed.append(len(table.guids))
        return index(table)

    def edit(n: int, **changes) -> None:
        values = {"topics": TOPICS[n % 4], "heat": n * 7 % 100,
                  "publishedDateTime": f"2026-11-{n:02d}T08:00:00Z", **changes}  # fmt: skip
        bump(records / f"record-{n:02d}.md", fields(n, **values))

    steps = [
        lambda: edit(3, heat=99),
        lambda: (edit(5, heat=0, quality=0), edit(8, heat=97)),
        lambda: edit(6, topics=["Robots", "Space"]),
        lambda: edit(9, published=False),
        lambda: (edit(9), edit(2, topics=["Oceans"], heat=95)),
    ]
    for number, step in enumerate(steps):
        step()
        indexed.clear()
        with monkeypatch.context() as patched:
            patched.setattr(StoryTable, "_index", counted)
            report = build(config)
        assert report.redo == "changes"
        assert indexed == [] or number >= 3  # steps 3 and 4 take a story out and back
        assert_rankings_as_from_scratch(config)
        same_as_full(config, tmp_path, report)


def test_a_feed_none_of_whose_stories_moved_keeps_its_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heat edit moves its story in its topics' rank orders and the all-topics one:
    those feeds choose again; every other feed takes the choice the last build made."""
    import aggregator.rank as rank

    records, config = site(tmp_path)
    build(config)
    chosen_for: list[int] = []
    choose = rank.choose

    def counted(ranked, max_items, ranking):  # type: ignore[no-untyped-def]
        chosen_for.append(len(ranked))
        return choose(ranked, max_items, ranking)

    monkeypatch.setattr(rank, "choose", counted)
    bump(records / "record-03.md", fields(3, topics=["Robots"], heat=99,
                                          publishedDateTime="2026-11-03T08:00:00Z"))  # fmt: skip
    report = build(config)
    assert report.redo == "changes"
    assert sorted(chosen_for) == [3, 12]  # Robots (3 stories) and all topics, not AI, Space
    same_as_full(config, tmp_path, report)
    chosen_for.clear()
    bump(records / "record-03.md", fields(3, topics=["Space"], heat=99,
                                          publishedDateTime="2026-11-03T08:00:00Z"))  # fmt: skip
    report = build(config)
    assert sorted(chosen_for) == [2, 4, 12]  # out of Robots, into Space
    same_as_full(config, tmp_path, report)


def _stories_made(monkeypatch) -> list[int]:
    """Counts the stories the changes path makes (aggregator.delta.story_record)."""
    import aggregator.delta as delta

    made = [0]
    make = delta.story_record

    def counted(links):
        made[0] += 1
        return make(links)

    monkeypatch.setattr(delta, "story_record", counted)
    return made


def test_feeds_a_change_leaves_alone_are_taken_as_they_were(tmp_path: Path, monkeypatch) -> None:
    records, config = site(tmp_path, count=28)
    build(config)
    output = config.site.output_dir
    shown = (output / "rss.xml").read_text() + (output / "topics/robots/rss.xml").read_text()
    # a Robots story that no feed shows, made colder: no feed changes
    n = next(n for n in range(3, 29, 4) if f"story-{n}/" not in shown)
    made = _stories_made(monkeypatch)
    colder = fields(n, topics=["Robots"], heat=0, publishedDateTime=f"2026-11-{n:02d}T08:00:00Z")
    bump(records / f"record-{n:02d}.md", colder)
    report = build(config)
    assert (report.redo, report.rendered, report.written) == ("changes", 0, 0)
    # its own story is made again (for its key); no feed's stories are, while a build
    # that took feeds from their stories made every story of every feed
    assert made[0] == 1
    with SqliteStore.open(config.build.state_path) as store:
        table = StoryTable.load(store)
    assert table is not None and set(table.feeds) == {
        "", "topics/ai", "topics/climate", "topics/robots", "topics/space"}
    same_as_full(config, tmp_path, report)


def test_a_known_feed_changed_by_hand_is_made_and_written_again(tmp_path: Path) -> None:
    records, config = site(tmp_path)
    build(config)
    space = config.site.output_dir / "topics" / "space" / "atom.xml"
    good = space.read_bytes()
    space.write_bytes(b"<feed>edited</feed>")
    bump(records / "record-04.md", fields(4, topics=["Robots"], heat=91,
                                          publishedDateTime="2026-11-04T08:00:00Z"))  # fmt: skip
    report = build(config)
    assert report.redo == "changes"
    assert space.read_bytes() == good
    same_as_full(config, tmp_path, report)


def test_stories_made_on_read_travel_as_plain_stories() -> None:
    import pickle

    from aggregator.rank import StoriesOnRead
    from tests.factories import make_record

    records = (make_record(1), make_record(2))
    asked: list[tuple[str, ...]] = []

    def make(guids):
        asked.append(tuple(guids))
        return records

    lazy = StoriesOnRead(tuple(r.guid for r in records), make)
    assert len(lazy) == 2 and not asked  # counting and guids make nothing
    assert pickle.loads(pickle.dumps(lazy)) == records
    assert list(lazy) == list(records) and lazy[1] == records[1]
    assert len(asked) == 1  # made once


def test_a_story_is_located_by_its_time_or_around_it_without_an_index_of_every_guid() -> None:
    table = StoryTable()
    for n in range(5_000):
        table.times.append(float(n // 3))
        table.guids.append(f"https://news.example/{n:05}")
    assert table.locate("https://news.example/04000", [4000 // 3]) == 4000  # its time
    assert table.locate("https://news.example/00007", [1500.0]) == 7  # another record's time
    assert table.locate("https://news.example/04999", []) == 4999
    assert table.locate("https://news.example/gone", [10.0]) is None
    assert table._positions is None  # found without the index of every guid
    assert table.position("https://news.example/00007") == 7  # and remembered
    assert table._positions is None
