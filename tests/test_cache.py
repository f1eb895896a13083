"""Incremental builds: the parse cache, feed render skipping, --full, the state file."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import feedparser
import pytest

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.parallel import WorkerPool, _start_method, parse_files
from aggregator.pipeline import build
from aggregator.sources.folder import iter_record_files, scan_record_files
from aggregator.state.parse_cache import FILE_KEY, PARSE, ParseCache, file_stamp
from aggregator.state.record_codec import decode_result, encode_result
from aggregator.state.sqlite import APPLICATION_ID, PAGE_SIZE, SCHEMA_VERSION, SqliteStore
from aggregator.validate import RecordDefaults, load_record_file

from .factories import CORPUS, ROOT, full_build_elsewhere, tree_bytes, write_config

TOPICS = ("AI", "Robots", "Space", "Climate", "Security")


def record_text(number: int, topics: tuple[str, ...], title: str | None = None) -> str:
    lines = [
        "---",
        f'title: "{title or f"Story number {number}"}"',
        f'webUrl: "https://news{number % 7}.example.com/story/{number}"',
        f"publishedDateTime: 2026-11-{1 + number % 28:02d}T{number % 24:02d}:00:00Z",
        f"quality: {number % 100}",
        f"heat: {(number * 7) % 100}",
        "provider:",
        f"  name: News {number % 7}",
        f"  domain: news{number % 7}.example.com",
        "topics:",
        *(f"  - {topic}" for topic in topics),
        "---",
        "",
    ]
    return "\n".join(lines)


def write_records(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"record-{number:04d}.md"
        path.write_text(record_text(number, (TOPICS[number % 5], TOPICS[(number + 2) % 5])))
        paths.append(path)
    return paths


def bump_mtime(path: Path) -> None:
    """Make a rewrite visible even on file systems with coarse timestamps."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def output_files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*.xml"))
    }


@pytest.fixture
def site(tmp_path: Path):
    records = tmp_path / "records"
    write_records(records, 20)
    return records, load_config(write_config(tmp_path, [records]))


def test_second_build_reads_no_file_and_renders_no_feed(site) -> None:
    _, config = site
    first = build(config)
    assert (first.documents, first.parsed) == (20, 20)
    assert first.feeds == 12  # all-topics feed + 5 topics, RSS and Atom
    # each feed also as JSON Feed (18), a page per feed (6), the OPML list and the stylesheet
    assert first.rendered == first.files == 26
    before = output_files(config.site.output_dir)

    second = build(config)
    assert (second.documents, second.parsed, second.records) == (20, 0, 20)
    assert (second.rendered, second.written) == (0, 0)
    assert output_files(config.site.output_dir) == before


def test_changed_file_is_parsed_again_and_only_its_feeds_render(site, tmp_path: Path) -> None:
    records, config = site
    build(config)
    changed = records / "record-0003.md"  # topics Climate and AI (3 % 5, 5 % 5)
    changed.write_text(record_text(3, ("Climate", "AI"), title="A new title for story three"))
    bump_mtime(changed)

    report = build(config)
    assert report.parsed == 1
    # the all-topics feed and the two topics of the record (RSS, Atom, JSON Feed each)
    # and their three pages; then the OPML list and stylesheet, which follow every feed
    assert report.rendered == 3 * 3 + 3 + 2
    written = {p.relative_to(config.site.output_dir).as_posix() for p in report.written_paths}
    assert {name for name in written if name.endswith(".xml")} == {
        "rss.xml",
        "atom.xml",
        "topics/ai/rss.xml",
        "topics/ai/atom.xml",
        "topics/climate/rss.xml",
        "topics/climate/atom.xml",
    }
    feed = feedparser.parse(config.site.output_dir / "topics" / "ai" / "rss.xml")
    titles = [entry.title for entry in feed.entries]
    assert "A new title for story three" in titles
    # the incremental output is exactly what a build from scratch makes
    fresh = tmp_path / "fresh"
    build(config, fresh, full=True)
    assert output_files(fresh) == output_files(config.site.output_dir)


def test_touched_but_unchanged_file_is_parsed_but_renders_nothing(site) -> None:
    records, config = site
    build(config)
    bump_mtime(records / "record-0007.md")
    report = build(config)
    assert (report.parsed, report.rendered) == (1, 0)


def test_deleted_file_drops_out_of_the_cache_and_the_feeds(site) -> None:
    records, config = site
    build(config)
    (records / "record-0004.md").unlink()
    report = build(config)
    assert (report.documents, report.parsed, report.records) == (19, 0, 19)
    links = [e.link for e in feedparser.parse(config.site.output_dir / "rss.xml").entries]
    assert "https://news4.example.com/story/4" not in links
    with SqliteStore.open(config.build.state_path) as store:
        keys = [key for key in store.items(PARSE) if key.startswith(FILE_KEY)]
    assert len(keys) == 19
    assert not any(key.endswith("record-0004.md") for key in keys)


def test_added_file_is_the_only_one_parsed(site) -> None:
    records, config = site
    build(config)
    (records / "record-0100.md").write_text(record_text(100, ("Space",)))
    report = build(config)
    assert (report.documents, report.parsed, report.records) == (21, 1, 21)


def test_problems_of_cached_files_are_reported_on_every_run(site, capsys) -> None:
    records, config = site
    (records / "broken.md").write_text("---\ntitle: Broken\nwebUrl: nope\n---\n")
    arguments = ["build", "--config", str(config.path)]
    assert main(arguments) == 1
    first = capsys.readouterr()
    assert "broken.md" in first.err and "webUrl" in first.err
    assert main(arguments) == 1
    second = capsys.readouterr()
    assert "(0 parsed)" in second.out
    assert second.err == first.err


def test_full_reads_and_renders_everything(site, capsys) -> None:
    _, config = site
    build(config)
    assert main(["build", "--config", str(config.path), "--full"]) == 0
    out = capsys.readouterr().out
    assert "(20 parsed)" in out
    assert "rendered 26 and wrote 0 of 26 files" in out
    assert build(config).parsed == 0  # --full refreshed the cache


def test_site_setting_change_renders_every_feed(site, tmp_path: Path) -> None:
    records, config = site
    build(config)
    changed = load_config(write_config(tmp_path, [records], "[feeds]\nmax_items = 49\n"))
    assert build(changed).rendered == 0  # no feed has more than 49 items: same bytes
    retitled_path = config.path
    retitled_path.write_text(retitled_path.read_text().replace("Test News", "Other News"))
    report = build(load_config(retitled_path))
    assert (report.parsed, report.rendered) == (0, 26)
    assert report.written == 26 - 1  # all but the stylesheet, which names no site


def test_a_feed_file_changed_or_removed_on_disk_is_rendered_again(site) -> None:
    _, config = site
    build(config)
    output = config.site.output_dir
    (output / "topics/space/atom.xml").unlink()
    rss = output / "topics/robots/rss.xml"
    rss.write_bytes(rss.read_bytes().replace(b"Story", b"Stori"))  # same size, other bytes
    report = build(config)
    assert report.rendered == 2 * 3  # the two feeds' RSS, Atom and JSON Feed
    assert {p.relative_to(output).as_posix() for p in report.written_paths} == {
        "topics/space/atom.xml",
        "topics/robots/rss.xml",
    }


@pytest.mark.parametrize(
    "content",
    [b"this is not a database, just some bytes" * 100, b""],
    ids=["garbage", "empty"],
)
def test_corrupt_state_file_is_rebuilt_with_a_warning(site, content: bytes, capsys) -> None:
    _, config = site
    build(config)
    state = config.build.state_path
    for suffix in ("-wal", "-shm"):
        Path(str(state) + suffix).unlink(missing_ok=True)
    state.write_bytes(content)
    code = main(["build", "--config", str(config.path)])
    captured = capsys.readouterr()
    assert code == 0
    if content:
        assert "state file unusable" in captured.err
        assert (state.parent / "state.db.corrupt").read_bytes() == content
    assert "(20 parsed)" in captured.out
    assert build(config).parsed == 0  # the rebuilt store works


def test_foreign_sqlite_file_is_moved_aside_not_used(site, capsys) -> None:
    _, config = site
    state = config.build.state_path
    state.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(state) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
        other.execute("INSERT INTO notes VALUES ('not ours')")
    other.close()
    assert main(["build", "--config", str(config.path)]) == 0
    assert "not an aggregator state file" in capsys.readouterr().err
    with sqlite3.connect(state.parent / "state.db.corrupt") as kept:
        assert kept.execute("SELECT text FROM notes").fetchall() == [("not ours",)]
    kept.close()


def test_damaged_cache_entry_is_parsed_again(site) -> None:
    records, config = site
    build(config)
    path = records / "record-0005.md"
    stat = path.stat()
    key = ParseCache.key(os.path.abspath(records)) + "/record-0005.md"
    (records / "record-0006.md").touch()  # some file changed: the records must be read
    with SqliteStore.open(config.build.state_path) as store:
        store.put(PARSE, key, file_stamp(stat.st_size, stat.st_mtime_ns) + b"\x00garbage")
    report = build(config)
    assert (report.parsed, report.records, report.rendered) == (2, 20, 0)
    assert build(config).parsed == 0


def test_unusable_state_location_is_a_config_error(tmp_path: Path, capsys):
    records = tmp_path / "records"
    write_records(records, 3)
    (tmp_path / "blocker").write_text("a file where the state folder should be")
    config_path = write_config(tmp_path, [records], '[build]\nstate_path = "blocker/state.db"\n')
    assert main(["build", "--config", str(config_path)]) == 2
    captured = capsys.readouterr()
    assert "build.state_path: expected a usable state file" in captured.err
    assert not (tmp_path / "out").exists()


def test_check_writes_no_state(site) -> None:
    _, config = site
    report = build(config, write=False)
    assert report.parsed == 20
    assert not config.build.state_path.exists()


def test_process_pool_output_is_identical_to_one_process(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_records(records, 450)  # enough for two workers
    (records / "bad.md").write_text("---\ntitle: [unclosed\n---\n")
    reports, outputs = [], []
    for workers in (1, 2):
        config = load_config(write_config(tmp_path, [records], f"[build]\nworkers = {workers}\n"))
        output = tmp_path / f"out-{workers}"
        reports.append(build(config, output, full=True))
        outputs.append(output_files(output))
    assert outputs[0] == outputs[1]
    assert reports[0].problems == reports[1].problems
    assert len(reports[0].problems) == 1
    assert reports[0].records == reports[1].records == 450

    paths = [str(path) for path in sorted(records.iterdir())]
    load = _loader()
    with WorkerPool(2) as pool, WorkerPool(1) as serial:
        assert list(parse_files(load, paths, pool)) == list(parse_files(load, paths, serial))


def test_a_build_on_another_thread_uses_fresh_worker_processes(tmp_path: Path) -> None:
    """`serve --build-every` builds on a thread: its workers are spawned, not forked (a
    lock held by another thread at the moment of forking could hang them); the output is
    the same as from one process."""
    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(_start_method).result().get_start_method() == "spawn"
    records = tmp_path / "records"
    write_records(records, 450)
    outputs = {}
    for workers in (1, 2):
        config = load_config(write_config(tmp_path, [records], f"[build]\nworkers = {workers}\n"))
        output = tmp_path / f"out-{workers}"
        with ThreadPoolExecutor(1) as thread:
            report = thread.submit(build, config, output, full=True).result()
        assert report.parsed == 450
        outputs[workers] = tree_bytes(output)
    assert outputs[1] == outputs[2]


def _loader():
    from functools import partial

    from aggregator.config import DEFAULT_TRACKING_PARAMS

    return partial(load_record_file, defaults=RecordDefaults(50.0, 50.0, DEFAULT_TRACKING_PARAMS))


def _record_files() -> list[Path]:
    files = list(iter_record_files(ROOT / "examples" / "records"))
    if CORPUS.is_dir():
        files += list(iter_record_files(CORPUS))
    return files


def test_cached_results_decode_to_exactly_what_was_parsed() -> None:
    load = _loader()
    files = _record_files()
    assert len(files) > 40
    for path in files:
        result = load(str(path))
        assert decode_result(encode_result(result), str(path)) == result, path


def test_scan_finds_what_iter_record_files_finds(tmp_path: Path) -> None:
    root = tmp_path / "records"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".hidden").mkdir()
    for name in ("z.md", "a.YAML", "notes.txt", ".secret.md", "b/x.json", "b/deeper/y.yml",
                 "a/one.markdown", ".hidden/h.md"):  # fmt: skip
        (root / name).write_text("---\ntitle: x\n---\n")
    (root / "linked").symlink_to(root / "b", target_is_directory=True)
    (root / "dangling.md").symlink_to(root / "missing.md")
    found = scan_record_files(root)
    assert [path for path, _ in found] == [str(p) for p in iter_record_files(root)]
    assert dict(found)[str(root / "dangling.md")] is None
    stat = (root / "z.md").stat()
    assert dict(found)[str(root / "z.md")] == file_stamp(stat.st_size, stat.st_mtime_ns)


def test_cache_is_shared_by_builds_started_from_other_folders(tmp_path: Path, monkeypatch):
    write_records(tmp_path / "records", 5)
    write_config(tmp_path, ["records"])
    monkeypatch.chdir(tmp_path)
    assert build(load_config(Path("config.toml"))).parsed == 5
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    report = build(load_config(Path("../config.toml")))
    assert (report.parsed, report.records, report.written) == (0, 5, 0)


def test_check_command_runs_without_output_option(site, capsys) -> None:
    _, config = site
    assert main(["check", "--config", str(config.path)]) == 0
    assert "nothing written" in capsys.readouterr().out


def test_a_state_path_that_is_a_folder_is_a_config_error_and_left_alone(
    tmp_path: Path, capsys
) -> None:
    records = tmp_path / "records"
    write_records(records, 2)
    (tmp_path / "state-folder" / "keep").mkdir(parents=True)
    config_path = write_config(tmp_path, [records], '[build]\nstate_path = "state-folder"\n')
    assert main(["build", "--config", str(config_path)]) == 2
    assert "build.state_path: expected a usable state file" in capsys.readouterr().err
    assert (tmp_path / "state-folder" / "keep").is_dir()
    assert not list(tmp_path.glob("*.corrupt"))


def test_a_topic_that_is_gone_takes_only_its_own_files_with_it(site) -> None:
    records, config = site
    lonely = records / "lonely.md"
    lonely.write_text(record_text(500, ("Lonely Topic",)))
    build(config)
    folder = config.site.output_dir / "topics" / "lonely-topic"
    assert (folder / "rss.xml").is_file()
    other = config.site.output_dir / "topics" / "space"
    (other / "notes.txt").write_text("not ours")
    lonely.unlink()
    report = build(config)
    assert not folder.exists()  # rss, atom, JSON Feed and page gone, then the folder
    assert (other / "notes.txt").read_text() == "not ours"
    assert report.feeds == 12 and build(config).written == 0


def test_a_stale_file_someone_changed_is_left_alone(site) -> None:
    records, config = site
    lonely = records / "lonely.md"
    lonely.write_text(record_text(500, ("Lonely Topic",)))
    build(config)
    page = config.site.output_dir / "topics" / "lonely-topic" / "index.html"
    page.write_text("edited by hand")
    lonely.unlink()
    build(config)
    assert page.read_text() == "edited by hand"
    assert not (page.parent / "rss.xml").exists()


def test_a_rerun_over_the_same_inputs_decodes_nothing_but_reports_the_same(site, capsys) -> None:
    records, config = site
    (records / "broken.md").write_text("---\ntitle: Broken\nwebUrl: nope\n---\n")
    first = build(config)
    with SqliteStore.open(config.build.state_path) as store:
        store.delete_many(PARSE, list(store.items(PARSE)))  # a rerun that decoded would reparse
    again = build(config)
    assert (again.parsed, again.rendered, again.written) == (0, 0, 0)
    assert (again.records, again.items, again.rejected, again.files) == (
        first.records, first.items, first.rejected, first.files
    )  # fmt: skip
    assert [str(p) for p in again.problems] == [str(p) for p in first.problems]
    # an output file changed by hand: the shortcut is not taken, the file is made again
    rss = config.site.output_dir / "rss.xml"
    rss.write_text("damaged")
    repaired = build(config)
    assert repaired.parsed == 21 and rss.read_bytes() != b"damaged"


def drop_parse_cache(config) -> None:
    """Forget every parsed file: a build that still reads the old files shows it in `parsed`."""
    with SqliteStore.open(config.build.state_path) as store:
        store.delete_many(PARSE, list(store.items(PARSE)))


def test_added_files_give_the_feeds_a_full_build_would(site, tmp_path: Path) -> None:
    records, config = site
    build(config)
    (records / "new-1.md").write_text(record_text(101, ("AI", "Brand New Topic")))
    (records / "new-2.md").write_text(record_text(102, ("Space",), title="A fresh Space story"))
    (records / "new-3.md").write_text("---\ntitle: Broken\nwebUrl: nope\n---\n")
    report = build(config)
    assert report.parsed == 3  # only the new files: the old ones come from the parse cache
    assert (report.documents, report.records, report.rejected) == (23, 22, 1)
    assert "new-3.md" in " ".join(str(p) for p in report.problems)
    fresh = tmp_path / "fresh"
    full = full_build_elsewhere(config, fresh)
    assert tree_bytes(fresh) == tree_bytes(config.site.output_dir)
    assert (full.documents, full.records, full.items, full.feeds, full.files) == (
        report.documents, report.records, report.items, report.feeds, report.files
    )  # fmt: skip
    assert [str(p) for p in full.problems] == [str(p) for p in report.problems]


def test_many_rounds_of_additions_match_a_full_build(tmp_path: Path) -> None:
    records = tmp_path / "records"
    write_records(records, 30)
    config = load_config(write_config(tmp_path, [records], "[feeds]\nmax_items = 4\n"))
    build(config)
    for round_ in range(4):
        for n in range(3):
            number = 200 + round_ * 10 + n  # new providers, dates and ranks each round
            topics = (TOPICS[number % 5], f"Round {round_}")
            (records / f"add-{number}.md").write_text(record_text(number, topics))
        assert build(config).parsed == 3
        fresh = tmp_path / f"fresh-{round_}"
        full_build_elsewhere(config, fresh)
        assert tree_bytes(fresh) == tree_bytes(config.site.output_dir)


def test_a_duplicate_or_a_new_spelling_among_added_files_matches_a_full_build(
    site, tmp_path: Path
) -> None:
    records, config = site
    build(config)
    # the same story as record 4, filed again: it must be merged
    (records / "again.md").write_text(record_text(4, ("AI",), title="Filed again"))
    assert build(config).parsed == 1
    full_build_elsewhere(config, tmp_path / "f1")
    assert tree_bytes(tmp_path / "f1") == tree_bytes(config.site.output_dir)
    # enough new records spelling "ai" to change how the topic is shown everywhere
    for n in range(12):
        (records / f"lower-{n}.md").write_text(record_text(300 + n, ("ai",)))
    assert build(config).parsed == 12
    full_build_elsewhere(config, tmp_path / "f2")
    assert tree_bytes(tmp_path / "f2") == tree_bytes(config.site.output_dir)


def test_only_pages_whose_content_changed_are_rendered_and_all_match_a_full_build(
    site, tmp_path: Path
) -> None:
    records, config = site
    output = config.site.output_dir
    build(config)
    # A new topic takes over the plain slug of "Space" (its key sorts first): every page
    # that links to Space changes, though none of their stories did.
    (records / "new.md").write_text(record_text(103, ("-Space",), title="A story on -Space"))
    build(config)
    assert "<title>" in (page := (output / "topics/space/index.html").read_text())
    assert "-Space" in page.split("<title>")[1].split("</title>")[0]
    full_build_elsewhere(config, tmp_path / "fresh")
    assert tree_bytes(tmp_path / "fresh") == tree_bytes(output)

    changed = records / "record-0005.md"  # AI and Space; only its title changes
    changed.write_text(record_text(5, ("AI", "Space"), title="Story five, retitled"))
    bump_mtime(changed)
    report = build(config)
    written = {p.relative_to(output).as_posix() for p in report.written_paths}
    feeds = {name.removesuffix("rss.xml") for name in written if name.endswith("rss.xml")}
    # the all-topics feed, AI's and Space's: the feeds that hold story 5
    assert len(feeds) == 3 and {"", "topics/ai/"} <= feeds
    assert {name for name in written if name.endswith(".html")} == {
        f"{folder}index.html" for folder in feeds
    }
    # their RSS, Atom and JSON Feed files and pages (the index among them); the OPML list
    # and stylesheet, which follow every feed (rendered, and found unchanged)
    assert report.rendered == 3 * 3 + 3 + 2
    full_build_elsewhere(config, tmp_path / "fresh-2")
    assert tree_bytes(tmp_path / "fresh-2") == tree_bytes(output)


def test_a_state_file_of_the_previous_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    """Version 1 kept entries in a WITHOUT ROWID table on 4 KiB pages; they are dropped
    (a cache: the next build refills it) and the file is rewritten with larger pages."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(
        "CREATE TABLE entries (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
        " PRIMARY KEY (namespace, key)) WITHOUT ROWID"
    )
    db.execute("INSERT INTO entries VALUES ('parse', 'file:/x.md', x'00')")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    warnings: list[str] = []
    with SqliteStore.open(path, warnings.append) as store:
        assert store.items(PARSE) == {}
        store.put(PARSE, "file:/y.md", b"\x01")
    assert warnings == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with SqliteStore.open(path) as store:
        assert store.items(PARSE) == {"file:/y.md": b"\x01"}


def test_a_new_state_file_has_large_pages_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStore.open(path) as store:
        store.put(PARSE, "file:/x.md", b"\x00" * 2000)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_stats_shared_with_a_forked_process_are_the_same(tmp_path: Path) -> None:
    """A forked process lists half the subfolders and, from `split_at` files, stats half
    the files: the listings are the same as one process makes, folder by folder, files
    without a stat included, and so are the links and folders it reports."""
    from aggregator.sources.folder import list_folders

    root = tmp_path / "records"
    for folder in ("", "a", "a/b", "c"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in range(7):
            (root / folder / f"r{n}.md").write_text("x" * n)
    (root / "c" / "dangling.md").symlink_to(root / "missing.md")
    (root / "a" / "to-c").symlink_to(root / "c", target_is_directory=True)  # reached twice
    (root / "d").mkdir()
    (root / "d" / "outside").symlink_to(tmp_path, target_is_directory=True)  # not followed
    (root / "e").mkdir(mode=0)  # cannot be listed (unless run as root)
    heard: dict[bool, list[tuple[Path, str]]] = {True: [], False: []}

    def hear(parallel: bool) -> Callable[[Path, str], None]:
        return lambda path, reason: heard[parallel].append((path, reason))

    alone = list_folders(root, hear(False), hear(False), parallel=False)
    shared = list_folders(root, hear(True), hear(True), split_at=1)
    (root / "e").chmod(0o755)
    assert shared == alone and len(alone) == 4
    assert sorted(heard[True]) == sorted(heard[False]) and heard[False]
    assert sum(len(sizes) for _, sizes, _ in alone.values()) == 29
    assert -1 in alone["c"][1]  # the dangling link: found, without a stat


@pytest.mark.parametrize("same_context", [True, False], ids=["same", "another"])
def test_entries_of_files_not_read_are_forgotten_in_either_context(same_context: bool) -> None:
    # In another context (another program, other settings) nothing stored is loaded;
    # finishing still forgets every entry this build did not make or keep.
    from aggregator.state import memory_store

    stamp = file_stamp(10, 1)
    with memory_store() as store:
        first = ParseCache(store, b"context one")
        first.save([(f"{FILE_KEY}/r/{name}.md", stamp, b"old") for name in "abc"])
        first.finish()
        cache = ParseCache(store, b"context one" if same_context else b"context two")
        hit = cache.lookup(f"{FILE_KEY}/r/a.md", stamp)
        assert (hit is not None) == same_context
        if hit is None:
            cache.save([(f"{FILE_KEY}/r/a.md", stamp, b"new")])
        cache.finish()
        assert sorted(store.keys(PARSE)) == ["context", f"{FILE_KEY}/r/a.md"]
        assert store.get(PARSE, f"{FILE_KEY}/r/a.md") == stamp + (b"old" if same_context
                                                                 else b"new")  # fmt: skip
