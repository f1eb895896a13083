"""The incremental decision (aggregator.incremental), and incremental builds against
builds from scratch."""

from __future__ import annotations

import ast
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import incremental
from aggregator.config import load_config
from aggregator.incremental import Decision, Redo, decide
from aggregator.pipeline import build
from aggregator.state.keys import Listing

from .factories import (
    build_snapshot,
    fields,
    full_build_elsewhere,
    listings_of,
    tree_bytes,
    write_config,
    write_record,
)

A, B, C = "file:/r/a.md", "file:/r/b.md", "file:/r/c.md"
LAST = {A: (10, 1), B: (20, 2)}  # (size, mtime_ns) of the files the last build read


def now(**changes: tuple[int, int] | None) -> dict[str, Listing]:
    """The files found now: the last build's, with `changes` (a key of None: gone)."""
    found = dict(LAST)
    names = {"a": A, "b": B, "c": C, "d": "file:/r/d.md"}
    for name, stamp in changes.items():
        if stamp is None:
            found.pop(names[name])
        else:
            found[names[name]] = stamp
    return listings_of(found)


def test_the_same_files_settings_and_output_redo_nothing() -> None:
    decision = decide(build_snapshot(LAST), now(), b"settings", output_intact=True)
    assert decision == Decision(Redo.NOTHING, remembered=True)
    assert not decision.files_changed and decision.remember


def test_nothing_remembered_takes_the_full_path() -> None:
    decision = decide(None, now(), b"settings", output_intact=True)
    assert (decision.redo, decision.remembered, decision.added) == (Redo.FULL, False, ())


def test_an_added_file() -> None:
    decision = decide(build_snapshot(LAST), now(c=(30, 3)), b"settings", output_intact=True)
    assert decision.redo is Redo.FULL
    assert (decision.added, decision.edited, decision.deleted, decision.renamed) == (
        (C,), (), (), ()
    )  # fmt: skip


@pytest.mark.parametrize("stamp", [(11, 1), (10, 5)], ids=["size", "mtime"])
def test_an_edited_file(stamp: tuple[int, int]) -> None:
    decision = decide(build_snapshot(LAST), now(a=stamp), b"settings", output_intact=True)
    assert decision.redo is Redo.FULL
    assert (decision.added, decision.edited, decision.deleted) == ((), (A,), ())


def test_edits_in_a_large_folder_are_found_wherever_they_are() -> None:
    # The stamps are compared a stretch at a time: edits at a stretch's edges count.
    last = {f"file:/r/{n:05}.md": (100 + n, n) for n in range(2_000)}
    edits = {0: (1, 0), 511: (100 + 511, 7), 512: (9, 512), 1_023: (1, 1), 1_999: (2, 2)}
    found = dict(last)
    for n, stamp in edits.items():
        found[f"file:/r/{n:05}.md"] = stamp
    decision = decide(build_snapshot(last), listings_of(found), b"settings", output_intact=True)
    assert decision.edited == tuple(f"file:/r/{n:05}.md" for n in sorted(edits))
    assert (decision.added, decision.deleted) == ((), ())


@pytest.mark.parametrize("reordered", [False, True], ids=["as-listed", "listed-otherwise"])
def test_files_come_gone_and_edited_in_a_large_folder(reordered: bool) -> None:
    # Without the files that came or went the listings line up place by place, or (a
    # folder the OS lists in another order) are compared by name: the same Decision.
    last = {f"file:/r/{n:05}.md": (100 + n, n) for n in range(2_000)}
    found: dict[str, tuple[int, int]] = {}
    for n, (key, stamp) in enumerate(last.items()):
        if n in (3, 700, 1_999):
            continue  # deleted
        if n in (0, 900):
            found[f"file:/r/new-{n}.md"] = (7, 7)  # added, before this one
        found[key] = (1, 1) if n in (1, 512, 1_500) else stamp
    if reordered:
        found = dict(reversed(found.items()))
    decision = decide(build_snapshot(last), listings_of(found), b"settings", output_intact=True)
    assert decision.added == ("file:/r/new-0.md", "file:/r/new-900.md")
    assert decision.deleted == tuple(f"file:/r/{n:05}.md" for n in (3, 700, 1_999))
    assert decision.edited == tuple(f"file:/r/{n:05}.md" for n in (1, 512, 1_500))


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(
    st.integers(min_value=0, max_value=1_400),
    st.lists(st.tuples(st.sampled_from(["add", "run", "delete", "edit", "swap"]),
                       st.integers(min_value=0, max_value=10**6)), max_size=12),
)  # fmt: skip
def test_files_come_and_gone_anywhere_are_found_as_by_name(
    count: int, moves: list[tuple[str, int]]
) -> None:
    # However the listing differs (files put in one by one or in a run longer than the
    # look-ahead, taken out, edited, two swapped), the Decision is the one a comparison
    # by name gives.
    last = {f"file:/r/{n:05}.md": (100 + n, n) for n in range(count)}
    listed = list(last.items())
    for number, (kind, pick) in enumerate(moves):
        at = pick % (len(listed) + 1)
        if kind == "add":
            listed.insert(at, (f"file:/r/new-{number}.md", (7, number)))
        elif kind == "run":
            listed[at:at] = [(f"file:/r/run-{number}-{n}.md", (8, n)) for n in range(100)]
        elif listed and kind == "delete":
            del listed[at % len(listed)]
        elif listed and kind == "edit":
            key, _ = listed[at % len(listed)]
            listed[at % len(listed)] = (key, (1, number))
        elif len(listed) > 1 and kind == "swap":
            one, two = at % len(listed), (at * 7 + 3) % len(listed)
            listed[one], listed[two] = listed[two], listed[one]
    found = dict(listed)
    decision = decide(build_snapshot(last), listings_of(found), b"settings", output_intact=True)
    came = {key for key in found if key not in last}
    went = {key for key in last if key not in found}
    edited = {key for key in found if key in last and found[key] != last[key]}
    renamed = dict(decision.renamed)
    assert set(decision.added) | set(renamed.values()) == came
    assert set(decision.deleted) | set(renamed) == went
    assert set(decision.edited) == edited


def test_a_few_moves_are_lined_up_without_comparing_by_name() -> None:
    old = [f"{n:05}.md" for n in range(3_000)]
    names = old[:5] + ["new.md"] + old[5:600] + old[601:2_000] + [f"run-{n}" for n in range(90)]
    names += old[2_000:]
    assert incremental._moves(names, old) == ([5, *range(2_000, 2_090)], [600])
    assert incremental._moves(old[:-3], old) == ([], [2_997, 2_998, 2_999])
    assert incremental._moves(list(reversed(old)), old) is None  # listed otherwise


def test_a_deleted_file() -> None:
    decision = decide(build_snapshot(LAST), now(b=None), b"settings", output_intact=True)
    assert decision.redo is Redo.FULL
    assert (decision.added, decision.edited, decision.deleted) == ((), (), (B,))


def test_a_renamed_file_is_a_deleted_key_and_an_added_key_with_its_stamp() -> None:
    decision = decide(build_snapshot(LAST), now(b=None, c=(20, 2)), b"settings",
                      output_intact=True)  # fmt: skip
    assert decision.redo is Redo.FULL
    assert decision.renamed == ((B, C),)
    assert (decision.added, decision.deleted) == ((), ())


def test_the_decision_carries_the_stamps_of_the_files_to_read() -> None:
    """The stamps a changed file's parse-cache entry is kept under, as found: what the
    build reads is not looked up in the listing again."""
    decision = decide(build_snapshot(LAST), now(a=(11, 1), b=None, c=(30, 3), d=(20, 2)),
                      b"settings", output_intact=True)  # fmt: skip
    d = "file:/r/d.md"
    assert (decision.added, decision.edited, decision.renamed) == ((C,), (A,), ((B, d),))
    assert decision.stamp_now() == {A: (11, 1), C: (30, 3), d: (20, 2)}


def test_a_deleted_file_and_an_added_one_with_another_stamp_are_no_rename() -> None:
    decision = decide(build_snapshot(LAST), now(b=None, c=(21, 2)), b"settings",
                      output_intact=True)  # fmt: skip
    assert (decision.added, decision.deleted, decision.renamed) == ((C,), (B,), ())


def test_renames_with_equal_stamps_pair_in_the_order_found() -> None:
    last = {A: (5, 5), B: (5, 5)}
    found = listings_of({C: (5, 5), "file:/r/d.md": (5, 5)})
    decision = decide(build_snapshot(last), found, b"settings", output_intact=True)
    assert decision.renamed == ((A, C), (B, "file:/r/d.md"))


def test_changed_settings() -> None:
    decision = decide(build_snapshot(LAST), now(), b"other", output_intact=True)
    assert (decision.redo, decision.settings_changed, decision.files_changed) == (
        Redo.FULL, True, False
    )  # fmt: skip


def test_remote_sources_always_take_the_full_path_and_are_not_remembered() -> None:
    decision = decide(build_snapshot(LAST), now(), b"settings", remote=True, output_intact=True)
    assert (decision.redo, decision.remote, decision.remember) == (Redo.FULL, True, False)


def test_full_is_forced() -> None:
    decision = decide(build_snapshot(LAST), now(), b"settings", full=True, output_intact=True)
    assert (decision.redo, decision.forced) == (Redo.FULL, True)


def test_output_touched_since_the_last_build() -> None:
    decision = decide(build_snapshot(LAST), now(), b"settings", output_intact=False)
    assert (decision.redo, decision.output_touched, decision.files_changed) == (
        Redo.FULL, True, False
    )  # fmt: skip


def test_a_file_without_a_stat_is_unknown_not_deleted() -> None:
    found = now(b=None)  # B was found, but could not be measured
    decision = decide(build_snapshot(LAST), found, b"settings", unstamped=[B],
                      output_intact=True)  # fmt: skip
    assert (decision.redo, decision.unstamped, decision.deleted) == (Redo.FULL, (B,), ())
    assert not decision.remember  # the next build cannot compare with it


def test_the_decision_is_pure_and_frozen() -> None:
    """The same plain values give the same Decision, and decide does no I/O: the module
    imports nothing that reaches the disk, the clock or the network."""
    arguments = (build_snapshot(LAST), now(a=(11, 1), b=None, c=(20, 2)), b"other")
    first = decide(*arguments, unstamped=(), remote=False, full=False, output_intact=False)
    again = decide(*arguments, unstamped=(), remote=False, full=False, output_intact=False)
    assert first == again and hash(first) == hash(again)
    with pytest.raises(FrozenInstanceError):
        first.redo = Redo.NOTHING  # type: ignore[misc]
    tree = ast.parse(inspect.getsource(incremental))
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    allowed = {"__future__", "enum", "collections.abc", "dataclasses", "typing",
               "aggregator.state.keys",  # plain values: no I/O
               "aggregator.state.snapshot"}  # types only
    assert imported <= allowed
    calls = {node.func.id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}  # fmt: skip
    assert not calls & {"open", "print", "input"}


# --- incremental builds against builds from scratch ---------------------------------

TOPIC_POOL = ("AI", "Space", "Climate", "Robots")
KINDS = ("add", "heat", "quality", "title", "delete", "rename", "publish", "copy", "topics")
START = datetime(2026, 11, 1, 8, tzinfo=UTC)
MTIME = 1_600_000_000 * 10**9  # every write gets the next second: each edit shows in its stamp


class Corpus:
    """A folder of record files driven by the steps, remembering each file's fields."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, dict[str, Any]] = {}
        self.made = 0  # records and copies made so far: each gets new names and links
        self.writes = 0

    def write(self, name: str, data: dict[str, Any]) -> None:
        self.files[name] = data
        path = write_record(self.folder, name, data)
        self.writes += 1
        stamp = MTIME + self.writes * 10**9
        os.utime(path, ns=(stamp, stamp))

    def add(self, topics: list[str]) -> None:
        self.made += 1
        n = self.made
        when = START + timedelta(hours=5 * n)
        self.write(f"record-{n:03d}.md", fields(n, publishedDateTime=when.isoformat(),
                                                heat=(n * 37) % 100, topics=topics))  # fmt: skip

    def apply(self, kind: str, pick: int, value: int, topics: list[str]) -> None:
        if kind == "add" or not self.files:
            self.add(topics)
            return
        name = sorted(self.files)[pick % len(self.files)]
        data = dict(self.files[name])
        if kind in ("heat", "quality"):
            data[kind] = value
        elif kind == "title":
            data["title"] = f"{data['title']} retold {value}"
        elif kind == "publish":
            data["published"] = not data["published"]
        elif kind == "topics":
            data["topics"] = topics
        elif kind == "delete":
            (self.folder / name).unlink()
            del self.files[name]
            return
        elif kind == "rename":
            self.made += 1
            renamed = f"moved-{self.made:03d}.md"
            (self.folder / name).rename(self.folder / renamed)  # keeps size and mtime
            self.files[renamed] = self.files.pop(name)
            return
        elif kind == "copy":  # the same story from another outlet a few hours later
            self.made += 1
            n = self.made
            when = datetime.fromisoformat(data["publishedDateTime"]) + timedelta(hours=3)
            data.update(webUrl=f"https://copies{n}.example/news/{n}/",
                        provider={"name": f"Copier {n}", "domain": f"copies{n}.example"},
                        publishedDateTime=when.isoformat(), heat=value)  # fmt: skip
            name = f"copy-{n:03d}.md"
        self.write(name, data)


steps = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 40),
        st.integers(0, 100),
        st.lists(st.sampled_from(TOPIC_POOL), min_size=1, max_size=2, unique=True),
    ),
    min_size=1,
    max_size=7,
)


# Source filters (keep the hot), a feed's filter (Space wants quality) and no clustering:
# what a build remembers of each must be applied like the rest.
FILTERED = "min_heat = 15\n[[filters]]\ntopics = [\"Space\"]\nmin_quality = 30\n"
SETTINGS = ("", FILTERED, "[clustering]\nenabled = false\n")


@settings(max_examples=30, derandomize=True, deadline=None, database=None)
@given(st.lists(steps.map(tuple), min_size=1, max_size=5), st.sampled_from(SETTINGS))
def test_incremental_builds_give_the_bytes_of_full_builds(
    batches: list[tuple[tuple[str, int, int, list[str]], ...]], settings_extra: str
) -> None:
    """Each batch of changes (one to seven files) is applied to the last build's
    stories (Redo.CHANGES) and must give every file a full build gives."""
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        corpus = Corpus(root / "records")
        for topics in (["AI"], ["Space", "AI"], ["Climate"], ["Robots", "Space"]):
            corpus.add(topics)
        extra = "[feeds]\nmax_items = 3\n[build]\nworkers = 1\n"  # cut-offs that matter
        config = load_config(write_config(root, [str(corpus.folder)], settings_extra + extra))
        build(config)
        for number, batch in enumerate(batches):
            for kind, pick, value, topics in batch:
                corpus.apply(kind, pick, value, topics)
            incremental_report = build(config)
            fresh = root / f"fresh-{number}"
            full_report = full_build_elsewhere(config, fresh)
            assert tree_bytes(config.site.output_dir) == tree_bytes(fresh), (number, batch)
            assert incremental_report.redo in ("changes", "nothing"), incremental_report.redo
            counted = ("documents", "records", "rejected", "unpublished", "duplicates", "items",
                       "feeds", "files", "filtered")  # fmt: skip
            for name in counted:
                assert getattr(incremental_report, name) == getattr(full_report, name), name
            shutil.rmtree(fresh)


# --- a lean start --------------------------------------------------------------------

RENDERING = ("feedgen", "lxml", "jinja2")  # what only rendering needs
REMOTE = ("httpx", "feedparser")  # what only remote sources need
LOADED = (
    "import sys\n"
    "from aggregator.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = ('feedgen', 'lxml', 'jinja2', 'httpx', 'nh3', 'rapidfuzz', 'feedparser')\n"
    "print('loaded:', *(name for name in heavy if name in sys.modules))\n"
)


def loaded_by(*arguments: str) -> set[str]:
    """The heavy modules a fresh interpreter has loaded after `aggregator <arguments>`."""
    done = subprocess.run([sys.executable, "-c", LOADED, *arguments], capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    line = done.stdout.splitlines()[-1]  # after the command's own output
    assert line.startswith("loaded:"), done.stdout
    return set(line.split()[1:])


def test_a_rebuild_with_nothing_changed_imports_no_renderer(tmp_path: Path) -> None:
    records = tmp_path / "records"
    for n in range(1, 6):
        write_record(records, f"record-{n}.md", fields(n, excerpt=f"What <em>{n}</em> did."))
    config = write_config(tmp_path, [str(records)])
    assert "feedgen" in loaded_by("build", "--config", str(config))  # this one renders
    assert loaded_by("build", "--config", str(config)) == set()
    assert not loaded_by("check", "--config", str(config)) & {*RENDERING, *REMOTE}


def test_an_edit_that_changes_no_feed_imports_no_renderer(tmp_path: Path) -> None:
    """What the upstream API does most: new heat for a story no feed shows. The build
    applies it and renders nothing, so it loads no renderer (archives included)."""
    records = tmp_path / "records"
    for n in range(1, 6):
        write_record(records, f"record-{n}.md", fields(n, heat=90 - n))
    write_record(records, "record-9.md", fields(28, heat=1, quality=1))  # the oldest, too
    config = write_config(tmp_path, [str(records)], "[feeds]\nmax_items = 3\n")
    assert "feedgen" in loaded_by("build", "--config", str(config))
    write_record(records, "record-9.md", fields(28, heat=2, quality=1))  # still the last
    assert not loaded_by("build", "--config", str(config)) & set(RENDERING)
    assert (records / "record-9.md").read_text().count("heat: 2") == 1


def test_a_snapshot_rewrites_only_what_changed_in_each_folder(monkeypatch: Any) -> None:
    """A heat edit rewrites its folder's stamps, not every file name; a folder that did
    not change is not written at all; a folder that is gone is deleted."""
    from aggregator.state import memory_store
    from aggregator.state.snapshot import Snapshot

    counts = dict.fromkeys(Snapshot.COUNTS, 0)
    last = Snapshot(b"s", listings_of({A: (10, 1), B: (20, 2), "file:/s/x.md": (5, 5)}),
                    counts, ())  # fmt: skip
    with memory_store() as store:
        last.save(store)
        written: list[str] = []
        put_many = type(store).put_many

        def recording(self: Any, namespace: str, items: Any) -> None:
            items = list(items)
            written.extend(key for key, _ in items)
            put_many(self, namespace, items)

        monkeypatch.setattr(type(store), "put_many", recording)
        edited = Snapshot(b"s", listings_of({A: (11, 3), B: (20, 2), "file:/s/x.md": (5, 5)}),
                          counts, ())  # fmt: skip
        edited.save(store, last)
        assert sorted(written) == ["last", "stamps:file:/r/"]
        assert Snapshot.load(store) == edited
        written.clear()
        fewer = Snapshot(b"s", listings_of({A: (11, 3), B: (20, 2)}), counts, ())
        fewer.save(store, edited)
        assert written == ["last"]
        assert Snapshot.load(store) == fewer
        assert sorted(store.keys("build")) == ["last", "names:file:/r/", "stamps:file:/r/"]
