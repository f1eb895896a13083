"""output: atomic writes, unchanged files left alone, stale temp files cleaned up."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.output.folder import TEMP_SUFFIX, remove_stale_temp_files, write_if_changed
from aggregator.pipeline import build

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


def test_changed_paths_lists_what_a_local_build_wrote_and_removed(
    tmp_path: Path, capsys
) -> None:
    from aggregator.cli import main

    records = tmp_path / "records"
    write_record(records, "a.md", fields(1, topics=["AI"]))
    gone = write_record(records, "b.md", fields(2, topics=["Gardening"]))
    config = write_config(tmp_path, ["records"])
    listed = tmp_path / "changed.txt"
    assert main(["build", "-q", "--config", str(config), "--changed-paths", str(listed)]) == 0
    out = tmp_path / "out"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    lines = listed.read_text(encoding="utf-8").splitlines()
    # The base URL is https://feeds.example.org/news/: CDN paths start with /news/.
    assert sorted(line for line in lines if not line.endswith("/")) == [
        f"/news/{name}" for name in files
    ]
    assert sorted(line for line in lines if line.endswith("/")) == [
        "/news/", "/news/topics/ai/", "/news/topics/gardening/"
    ]  # fmt: skip

    assert main(["build", "-q", "--config", str(config), "--changed-paths", str(listed)]) == 0
    assert listed.read_bytes() == b"", "nothing changed: an empty list"

    gone.unlink()
    assert main(["build", "-q", "--config", str(config), "--changed-paths", str(listed)]) == 0
    lines = listed.read_text(encoding="utf-8").splitlines()
    assert "/news/topics/gardening/rss.xml" in lines, "a removed file is listed"
    assert "/news/index.opml" in lines
    assert capsys.readouterr().err == ""


def test_an_unwritable_changed_paths_file_is_exit_5(tmp_path: Path, capsys) -> None:
    from aggregator.cli import main

    write_record(tmp_path / "records", "a.md", fields(1))
    config = write_config(tmp_path, ["records"])
    target = tmp_path / "missing" / "deeper"
    (tmp_path / "missing").write_text("a file where a folder should be", encoding="utf-8")
    assert main(["build", "-q", "--config", str(config), "--changed-paths", str(target)]) == 5
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("aggregator: write failed: ")
    assert line.endswith("the list of changed paths was not written")


def test_a_local_build_loads_no_object_storage_library(tmp_path: Path) -> None:
    write_record(tmp_path / "records", "a.md", fields(1))
    config = write_config(tmp_path, ["records"])
    for _ in range(2):  # a cold build, then a no-change rebuild
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "aggregator", "build", "-q",
             "--config", str(config)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
        assert "aggregator.pipeline" in imported, "importtime lists the modules"
        libraries = ("s3fs", "fsspec", "botocore", "aiobotocore", "aiohttp")
        assert not {name for name in imported if name.split(".")[0] in libraries}
        assert "aggregator.output.storage" not in imported


def test_link_order_names_are_the_renderers_names() -> None:
    from aggregator.output import plan
    from aggregator.render.paths import ARCHIVE_FOLDER, OPML_NAME, PAGE_NAME, STYLESHEET_NAME

    assert (plan.STYLESHEET_NAME, plan.ARCHIVE_FOLDER, plan.PAGE_NAME, plan.OPML_NAME) == (
        STYLESHEET_NAME, ARCHIVE_FOLDER, PAGE_NAME, OPML_NAME
    )  # fmt: skip
    files = ["index.opml", "index.html", "topics/ai/index.html", "topics/ai/rss.xml",
             "topics/ai/archive/atom-2.xml", "feed.xsl", "feed.json"]  # fmt: skip
    assert sorted(files, key=lambda name: (plan.link_order(name), name)) == [
        "feed.xsl", "topics/ai/archive/atom-2.xml", "feed.json", "topics/ai/rss.xml",
        "topics/ai/index.html", "index.html", "index.opml",
    ]  # fmt: skip


def test_objects_are_stored_with_the_types_a_host_serves() -> None:
    from aggregator.output.storage import content_type

    assert content_type("topics/ai/rss.xml") == "application/rss+xml; charset=utf-8"
    assert content_type("topics/ai/archive/rss-3.xml") == "application/rss+xml; charset=utf-8"
    assert content_type("archive/atom-1.xml") == "application/atom+xml; charset=utf-8"
    assert content_type("feed.json") == "application/feed+json; charset=utf-8"
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("index.opml") == "text/x-opml; charset=utf-8"
    assert content_type("feed.xsl") == "application/xml; charset=utf-8"
