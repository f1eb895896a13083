from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.cli import main

from .factories import (
    ROOT,
    age,
    feed_paths,
    fields,
    snapshot,
    tree_bytes,
    write_config,
    write_record,
)


def test_build_of_bundled_examples_reports_the_malformed_record(tmp_path: Path, capsys) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    code = main(["build", "--config", str(tmp_path / "config.toml")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "malformed-date-example.md:5: error: publishedDateTime" in err
    assert "1 rejected" in out
    assert (tmp_path / "feeds" / "rss.xml").is_file()
    assert (tmp_path / "feeds" / "topics" / "ai" / "atom.xml").is_file()


# --- foundation: exit codes, messages, check, rebuilds ------------------------------------


def good_records(folder: Path, count: int = 4) -> Path:
    for n in range(1, count + 1):
        write_record(folder, f"r{n}.md", fields(n, topics=["AI", f"Topic {n % 2}"]))
    return folder


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_all_well_is_exit_0_with_one_summary_line(tmp_path: Path, capsys) -> None:
    good_records(tmp_path / "records")
    config = write_config(tmp_path, ["records"])
    code, out, err = run(["build", "--config", str(config)], capsys)
    assert (code, err) == (0, "")
    [line] = out.splitlines()
    assert line.startswith(
        "4 records from 4 files (4 parsed): 0 rejected, 0 unpublished, 0 filtered, "
        "0 duplicates merged;"
    )
    assert "stories in 4 feeds; rendered 18 and wrote 18 of 18 files in " in line
    assert line.endswith(" s")


def test_rejected_record_is_exit_1_and_the_rest_is_published(tmp_path: Path, capsys) -> None:
    records = good_records(tmp_path / "records")
    write_record(records, "bad.md", fields(9, title=""))
    write_record(records, "off.md", fields(8, published=False))
    code, out, err = run(["build", "--config", str(write_config(tmp_path, ["records"]))], capsys)
    assert code == 1
    assert err.splitlines() == [
        f"{records / 'bad.md'}:3: error: title: missing or empty; record skipped"
    ]
    assert "4 records from 6 files (6 parsed): 1 rejected, 1 unpublished" in out
    feed = feedparser.parse((tmp_path / "out" / "rss.xml").read_bytes())
    assert len(feed.entries) == 4


@pytest.mark.parametrize(
    ("extra", "where"),
    [  # the config's first 7 lines are [site] and the first source; `extra` starts at 8
        ("[feeds]\nmax_items = 0", "9: feeds.max_items"),
        ('[feeds]\nmax_items = "many"', "9: feeds.max_items"),
        ("[ranking]\nmax_per_provider = -1", "9: ranking.max_per_provider"),
        ("[ranking]\ndoubling_hours = 0", "9: ranking.doubling_hours"),
        ("[records]\ndefault_heat = 101", "9: records.default_heat"),
        ("[records]\ntracking_params = 3", "9: records.tracking_params"),
        ("[feeds]\nmax_itemz = 3", "9: feeds.max_itemz"),
        ("[colour]\nx = 1", "8: colour"),
        ("[[sources]]\npath = 'nowhere'", "9: sources[2].path"),
        ("[[sources]]\nname = 'no path'", "8: sources[2]"),
    ],
)
def test_config_errors_are_exit_2_naming_the_key_and_line(
    tmp_path: Path, capsys, extra: str, where: str
) -> None:
    good_records(tmp_path / "records")
    config = write_config(tmp_path, ["records"], extra)
    for command in ("build", "check", "topics"):
        code, out, err = run([command, "--config", str(config)], capsys)
        assert code == 2
        assert out == ""
        assert err.startswith(f"aggregator: config error: {config}:{where}: ")
        assert "expected" in err or "did you mean" in err
        assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("site", "key"),
    [
        ('title = "x"\nbase_url = "ftp://x.example/"', "site.base_url"),
        ('title = "x"\nbase_url = "/relative/"', "site.base_url"),
        ('base_url = "https://x.example/"', "site.title"),
        ('title = "x"', "site.base_url"),
        ('title = "x"\nbase_url = "https://x.example/"\nlanguage = 3', "site.language"),
    ],
)
def test_site_errors_name_the_key(tmp_path: Path, capsys, site: str, key: str) -> None:
    good_records(tmp_path / "records")
    config = tmp_path / "config.toml"
    config.write_text(f'[site]\n{site}\n\n[[sources]]\npath = "records"\n', encoding="utf-8")
    code, _, err = run(["build", "--config", str(config)], capsys)
    assert code == 2
    assert f": {key}: expected" in err


def test_missing_source_directory_names_its_index(tmp_path: Path, capsys) -> None:
    good_records(tmp_path / "records")
    config = write_config(tmp_path, ["records", "records", "gone"])
    code, _, err = run(["build", "--config", str(config)], capsys)
    assert code == 2
    assert err.strip() == (  # counted as people count: the third source is sources[3]
        f"aggregator: config error: {config}:13: sources[3].path: expected an existing "
        f"directory, {tmp_path / 'gone'} is not one"
    )
    assert not (tmp_path / "out").exists()
    config = write_config(tmp_path, ["gone", "records", "lost"])
    code, _, err = run(["check", "--config", str(config)], capsys)
    assert code == 2
    assert [line.split(": ")[1:3] for line in err.splitlines()] == [
        ["config error", f"{config}:7"],
        ["config error", f"{config}:13"],
    ], "every missing folder in one run"


def test_missing_sources_and_bad_files(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[site]\ntitle = "x"\nbase_url = "https://x.example/"\n', encoding="utf-8")
    assert run(["build", "--config", str(config)], capsys)[2].count(": sources: expected") == 1
    config.write_text("[site\ntitle =", encoding="utf-8")
    code, _, err = run(["check", "--config", str(config)], capsys)
    assert code == 2 and "not valid TOML" in err
    code, _, err = run(["build", "--config", str(tmp_path / "none.toml")], capsys)
    assert code == 2 and "config file not found" in err


def test_usage_errors_are_exit_2(capsys) -> None:
    for argv in (
        [],
        ["publish"],
        ["build", "--frobnicate"],
        ["check", "--output", "x"],
        ["build", "-v", "-q"],
    ):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_default_config_is_the_one_in_the_current_folder(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    good_records(tmp_path / "records")
    write_config(tmp_path, ["records"])
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(["build"], capsys)
    assert code == 0
    assert (tmp_path / "out" / "rss.xml").is_file()


def test_paths_are_relative_to_the_config_file(tmp_path: Path, capsys, monkeypatch) -> None:
    project = tmp_path / "project"
    good_records(project / "records")
    config = write_config(project, ["records"], output="public/feeds")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, _ = run(["build", "--config", "../project/config.toml"], capsys)
    assert code == 0
    assert (project / "public" / "feeds" / "atom.xml").is_file()
    assert list(elsewhere.iterdir()) == []
    assert config.is_file()


def test_output_option_overrides_output_dir(tmp_path: Path, capsys) -> None:
    good_records(tmp_path / "records")
    config = write_config(tmp_path, ["records"])
    code, _, _ = run(["build", "--config", str(config), "--output", str(tmp_path / "alt")], capsys)
    assert code == 0
    assert (tmp_path / "alt" / "topics" / "ai" / "rss.xml").is_file()
    assert not (tmp_path / "out").exists()


def test_unwritable_output_is_a_config_error(tmp_path: Path, capsys) -> None:
    good_records(tmp_path / "records")
    config = write_config(tmp_path, ["records"])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run(["build", "--config", str(config), "--output", str(blocker)], capsys)
    assert code == 2
    assert f"{config}: --output: expected a writable folder" in err
    (tmp_path / "out").write_text("not a folder either")
    code, _, err = run(["build", "--config", str(config)], capsys)
    assert code == 2
    assert ": site.output_dir: expected a writable folder" in err


def test_check_lists_every_problem_and_writes_nothing(tmp_path: Path, capsys) -> None:
    records = good_records(tmp_path / "records")
    write_record(records, "no-title.md", fields(11, title=""))
    write_record(records, "bad-link.md", fields(12, webUrl="javascript:alert(1)"))
    write_record(records, "bad-date.md", fields(13, publishedDateTime="soon"))
    (records / "broken.json").write_text('{"title": "x",\n  oops}', encoding="utf-8")
    config = write_config(tmp_path, ["records"])
    before = sorted(p for p in tmp_path.rglob("*"))
    code, out, err = run(["check", "--config", str(config)], capsys)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 4
    assert {line.split(":")[0] for line in lines} == {
        str(records / name) for name in ("no-title.md", "bad-link.md", "bad-date.md", "broken.json")
    }
    assert "4 rejected" in out and "nothing written" in out
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_check_with_good_records_is_exit_0(tmp_path: Path, capsys) -> None:
    good_records(tmp_path / "records")
    code, out, _ = run(["check", "--config", str(write_config(tmp_path, ["records"]))], capsys)
    assert code == 0
    assert len(out.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_quiet_prints_only_errors_and_verbose_lists_files(tmp_path: Path, capsys) -> None:
    records = good_records(tmp_path / "records")
    (records / "README.md").write_text("# notes, not a record\n", encoding="utf-8")
    write_record(records, "bad.md", fields(9, webUrl="/relative"))
    config = str(write_config(tmp_path, ["records"]))
    code, out, err = run(["build", "-q", "--config", config], capsys)
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1 and "error: webUrl" in err  # the warning is not shown
    (tmp_path / "out" / "rss.xml").unlink()
    code, out, err = run(["build", "-v", "--config", config], capsys)
    assert out.splitlines()[0] == f"wrote {tmp_path / 'out' / 'rss.xml'}"
    assert len(out.splitlines()) == 2  # the one file written, then the summary
    assert "warning: no YAML front matter" in err


def test_second_build_changes_no_file(tmp_path: Path, capsys) -> None:
    records = good_records(tmp_path / "records", count=12)
    write_record(records, "bad.md", fields(20, heat="very"))
    config = str(write_config(tmp_path, ["records"]))
    assert run(["build", "--config", config], capsys)[0] == 1
    out = tmp_path / "out"
    age(out)
    first = snapshot(out)
    code, summary, _ = run(["build", "--config", config], capsys)
    assert code == 1
    assert "wrote 0 of 18 files" in summary
    assert snapshot(out) == first  # bytes, mtime_ns and inode of every file


def test_builds_into_different_folders_are_byte_identical(tmp_path: Path, capsys) -> None:
    good_records(tmp_path / "records", count=9)
    config = str(write_config(tmp_path, ["records"]))
    for name in ("one", "two"):
        assert run(["build", "--config", config, "--output", str(tmp_path / name)], capsys)[0] == 0
    one, two = tree_bytes(tmp_path / "one"), tree_bytes(tmp_path / "two")
    assert len(feed_paths(tmp_path / "one")) == 8  # all topics, AI, Topic 0, Topic 1
    assert one == two


def test_bundled_examples_build_and_rebuild_identically(tmp_path: Path, capsys) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    config = str(tmp_path / "config.toml")
    code, out, _ = run(["build", "--config", config], capsys)
    assert code == 1
    assert "1 unpublished, 0 filtered, 1 duplicate merged" in out
    feeds = tmp_path / "feeds"
    assert len(feed_paths(feeds)) == 20
    for path in feed_paths(feeds):
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, path
        etree.fromstring(path.read_bytes())
    age(feeds)
    first = snapshot(feeds)
    run(["build", "--config", config], capsys)
    assert snapshot(feeds) == first


def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    records = good_records(tmp_path / "records")
    config = write_config(tmp_path, ["records"])

    def aggregator(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aggregator", *args],
            capture_output=True, text=True, cwd=tmp_path, check=False,
        )  # fmt: skip

    assert aggregator("build", "--config", str(config)).returncode == 0
    write_record(records, "bad.md", fields(9, publishedDateTime="yesterday-ish"))
    result = aggregator("build", "--config", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    result = aggregator("build", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert aggregator("bogus").returncode == 2
