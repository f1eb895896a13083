"""Paths: symlinks in sources, path-traversing topics, the output folder's other files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.output.folder import UnsafePath, remove_stale_temp_files, target_path
from aggregator.sources.folder import iter_record_files
from aggregator.state.parse_cache import file_stamp

from .factories import all_feed_problems, fields, snapshot, write_config


def test_symlinks_out_of_the_source_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps(fields(99)), encoding="utf-8")
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "real.json").write_text(json.dumps(fields(1)), encoding="utf-8")
    (source / "sub" / "deep.json").write_text(json.dumps(fields(2)), encoding="utf-8")
    (source / "file-out.json").symlink_to(outside / "secret.json")
    (source / "dir-out").symlink_to(outside, target_is_directory=True)
    (source / "abs-etc.json").symlink_to("/etc/hostname")
    (source / "file-in.json").symlink_to(source / "real.json")
    (source / "dir-in").symlink_to(source / "sub", target_is_directory=True)
    skipped: list[tuple[Path, str]] = []
    found = list(iter_record_files(source, lambda path, reason: skipped.append((path, reason))))
    names = [str(p.relative_to(source)) for p in found]
    # dir-in leads to sub, which is walked once
    assert sorted(names) in (["dir-in/deep.json", "file-in.json", "real.json"],
                             ["file-in.json", "real.json", "sub/deep.json"])  # fmt: skip
    assert sorted(p.name for p, _ in skipped) == ["abs-etc.json", "dir-out", "file-out.json"]
    assert all("outside the source folder; not followed" in reason for _, reason in skipped)


def test_symlink_loops_neither_hang_nor_crash(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "a").mkdir(parents=True)
    (source / "a" / "one.json").write_text(json.dumps(fields(1)), encoding="utf-8")
    (source / "a" / "up").symlink_to(source, target_is_directory=True)  # loop to the root
    (source / "a" / "self").symlink_to(source / "a", target_is_directory=True)  # to itself
    (source / "x.md").symlink_to(source / "y.md")  # x -> y -> x
    (source / "y.md").symlink_to(source / "x.md")
    found = [str(p.relative_to(source)) for p in iter_record_files(source)]
    assert sorted(found) == ["a/one.json", "x.md", "y.md"]
    config = write_config(tmp_path, [source])
    assert main(["build", "--config", str(config), "-q"]) == 1  # the two loop files
    assert (tmp_path / "out" / "rss.xml").is_file()


def test_names_that_are_no_regular_files_are_told_apart_after_their_stats(
    tmp_path: Path,
) -> None:
    """Record files are listed by name and typed by their stats: a folder named like a
    record is walked, a link inside is stamped by what it leads to, a link out is left
    out and reported, and a folder of many other files is listed by type instead; the
    same in one process and shared with a forked one."""
    from aggregator.sources.folder import FEW_OTHERS, list_folders, scan_record_files

    source = tmp_path / "source"
    (source / "named.md").mkdir(parents=True)  # a folder, named like a record
    (source / "named.md" / "inner.json").write_text(json.dumps(fields(1)), encoding="utf-8")
    (source / "real.json").write_text(json.dumps(fields(2)), encoding="utf-8")
    (source / "alias.json").symlink_to(source / "real.json")
    (source / "away.json").symlink_to(tmp_path / "nowhere.json")  # out of the source
    (source / "deeper.md").symlink_to(source / "named.md", target_is_directory=True)
    many = source / "images"
    many.mkdir()
    for n in range(FEW_OTHERS + 1):
        (many / f"picture-{n}.jpg").write_bytes(b"")
    (many / "caption.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")
    (many / "sub").mkdir()
    (many / "sub" / "more.md").write_text("---\ntitle: y\n---\n", encoding="utf-8")
    skipped: list[Path] = []
    found = dict(scan_record_files(source, lambda path, _: skipped.append(path)))
    names = sorted(str(Path(p).relative_to(source)) for p in found)
    # deeper.md leads to named.md, walked once by whichever comes first
    assert names in (
        ["alias.json", "images/caption.md", "images/sub/more.md", "named.md/inner.json",
         "real.json"],
        ["alias.json", "deeper.md/inner.json", "images/caption.md", "images/sub/more.md",
         "real.json"],
    )  # fmt: skip
    assert skipped == [source / "away.json"]
    real = (source / "real.json").stat()
    assert found[str(source / "alias.json")] == found[str(source / "real.json")]
    assert found[str(source / "real.json")] == file_stamp(real.st_size, real.st_mtime_ns)
    alone = list_folders(source, parallel=False)
    assert list_folders(source, split_at=1) == alone
    assert not any(-2 in sizes for _, sizes, _ in alone.values())


def test_topic_names_cannot_leave_the_output_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    topics = ["../../etc", "..", "/etc/passwd", "a/../../b", "C:\\Windows\\System32", ".", "~root"]
    for index, topic in enumerate(topics):
        (source / f"{index}.json").write_text(json.dumps(fields(index, topics=[topic])), "utf-8")
    config = write_config(tmp_path, [source])
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert main(["build", "--config", str(config), "-q"]) == 0
    out = tmp_path / "out"
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert all(p.count("/") == 2 and p.startswith("topics/") for p in made if "/" in p)
    assert len([p for p in made if p.endswith(("rss.xml", "atom.xml"))]) == 2 * (1 + len(topics))
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    # .aggregator holds the build lock (beside the state file)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".aggregator", "config.toml", "out", "source"]  # fmt: skip
    assert all_feed_problems(out) == {}


def test_target_path_refuses_links_out_of_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "topics").mkdir(parents=True)
    (out / "topics" / "ai").symlink_to(elsewhere, target_is_directory=True)
    assert target_path(out, "topics/ml/rss.xml") == out / "topics/ml/rss.xml"
    for relative in ("topics/ai/rss.xml", "../x.xml", "/etc/x.xml", "."):
        with pytest.raises(UnsafePath):
            target_path(out, relative)


def test_a_planted_link_in_the_output_folder_is_not_written_through(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "1.json").write_text(json.dumps(fields(1, topics=["AI"])), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out" / "topics").mkdir(parents=True)
    (tmp_path / "out" / "topics" / "ai").symlink_to(elsewhere, target_is_directory=True)
    config = write_config(tmp_path, [source])
    assert main(["build", "--config", str(config)]) == 1
    assert list(elsewhere.iterdir()) == []
    assert (tmp_path / "out" / "rss.xml").is_file()


def test_files_the_build_did_not_make_are_left_alone(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for index in range(5):
        (source / f"{index}.json").write_text(
            json.dumps(fields(index, topics=[f"Topic {index % 7}"])), encoding="utf-8"
        )
    out = tmp_path / "out"
    (out / "topics" / "custom").mkdir(parents=True)
    (out / "topics" / "topic-1").mkdir(parents=True)
    mine = {
        "about.html": b"<h1>my page</h1>",
        ".htaccess": b"Options -Indexes",
        "topics/custom/rss.xml": b"<rss>not ours</rss>",
        "topics/topic-1/notes.txt": b"notes",
        "rss.xml.bak": b"backup",
        ".rss.xml.tmp": b"someone else's temp file",
    }
    for name, data in mine.items():
        (out / name).write_bytes(data)
    before = snapshot(out)
    config = write_config(tmp_path, [source])
    assert main(["build", "--config", str(config), "-q"]) == 0
    after = snapshot(out)
    assert {name: after[name] for name in mine} == {name: before[name] for name in mine}
    assert (out / "topics" / "topic-1" / "rss.xml").is_file()


def test_stale_temp_files_are_removed_without_following_links(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "topics" / "ai").mkdir(parents=True)
    stale = out / "topics" / "ai" / ".rss.xml.k3j2h1.aggregator-tmp"
    stale.write_bytes(b"half")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    theirs = elsewhere / ".rss.xml.abc.aggregator-tmp"
    theirs.write_bytes(b"not ours")
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    assert remove_stale_temp_files(out) == 1
    assert not stale.exists() and theirs.exists()
