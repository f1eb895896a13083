"""output: atomic writes, unchanged files left alone, stale temp files cleaned up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aggregator.build import build
from aggregator.config import load_config
from aggregator.output.folder import TEMP_SUFFIX, remove_stale_temp_files, write_if_changed

from .factories import OLD_NS, age, fields, write_config, write_record


def test_new_file_is_written_with_parents_and_readable_mode(tmp_path: Path) -> None:
    target = tmp_path / "topics" / "ai" / "rss.xml"
    assert write_if_changed(target, b"<rss/>") is True
    assert target.read_bytes() == b"<rss/>"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["rss.xml"]  # no temp file left behind


def test_unchanged_bytes_are_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "rss.xml"
    write_if_changed(target, b"same bytes")
    os.utime(target, ns=(OLD_NS, OLD_NS))
    before = target.stat()
    assert write_if_changed(target, b"same bytes") is False
    after = target.stat()
    assert after.st_mtime_ns == OLD_NS
    assert after.st_ino == before.st_ino


def test_changed_bytes_replace_the_file_by_rename(tmp_path: Path) -> None:
    target = tmp_path / "rss.xml"
    write_if_changed(target, b"old content, complete")
    os.utime(target, ns=(OLD_NS, OLD_NS))
    old_inode = target.stat().st_ino
    with open(target, "rb") as reader:  # a web server in the middle of sending the old file
        assert write_if_changed(target, b"new content") is True
        assert reader.read() == b"old content, complete"  # it still sees the whole old file
    assert target.read_bytes() == b"new content"
    assert target.stat().st_ino != old_inode
    assert target.stat().st_mtime_ns != OLD_NS
    assert os.listdir(tmp_path) == ["rss.xml"]


def test_same_size_different_bytes_is_a_change(tmp_path: Path) -> None:
    target = tmp_path / "atom.xml"
    write_if_changed(target, b"aaaa")
    assert write_if_changed(target, b"aaab") is True
    assert target.read_bytes() == b"aaab"


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "rss.xml"
    target.mkdir()  # a folder where the file should go: the rename must fail
    with pytest.raises(OSError):
        write_if_changed(target, b"data")
    assert os.listdir(tmp_path) == ["rss.xml"]
    assert target.is_dir()


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    stale = [
        tmp_path / f".rss.xml.k1j2{TEMP_SUFFIX}",
        tmp_path / "topics" / "ai" / f".atom.xml.x9{TEMP_SUFFIX}",
    ]
    keep = [tmp_path / "rss.xml", tmp_path / "topics" / "ai" / "notes.aggregator-tmp.txt"]
    for path in stale + keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    assert remove_stale_temp_files(tmp_path) == 2
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert remove_stale_temp_files(tmp_path / "missing") == 0


def test_build_cleans_temp_files_left_by_a_killed_run(tmp_path: Path) -> None:
    write_record(tmp_path / "records", "a.md", fields(1, topics=["AI"]))
    config = load_config(write_config(tmp_path, ["records"]))
    build(config)
    out = tmp_path / "out"
    left = out / "topics" / "ai" / f".rss.xml.abc123{TEMP_SUFFIX}"
    left.write_bytes(b"<rss><chan")
    age(out)
    report = build(config)
    assert not left.exists()
    assert report.written == 0
    assert {p.stat().st_mtime_ns for p in out.rglob("*.xml")} == {OLD_NS}
