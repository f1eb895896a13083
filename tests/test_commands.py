"""The commands that teach the tool: `init`, `topics`, `build --dry-run` and the help texts,
end to end (real processes where the exit code and the output are the point)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest

from aggregator import __version__
from aggregator.cli import COMMANDS, main
from aggregator.config import load_config
from aggregator.curate import plan_site

from .factories import fields, snapshot, write_config, write_record


def aggregator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        capture_output=True, text=True, cwd=cwd, check=False, timeout=120,
    )  # fmt: skip


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def everything(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under `root` (state file included), with bytes, mtime and inode."""
    return snapshot(root)


# --- init ----------------------------------------------------------------------------------


def test_init_makes_a_site_that_builds_cleanly(tmp_path: Path) -> None:
    result = aggregator("init", "mynews", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    site = tmp_path / "mynews"
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()) == [
        ".gitignore",
        "config.toml",
        "records/2026-01-05-welcome-to-your-news-site.md",
    ]
    assert "cd mynews" in result.stdout and "aggregator build" in result.stdout

    built = aggregator("build", cwd=site)
    assert (built.returncode, built.stderr) == (0, "")
    assert built.stdout.startswith("1 record from 1 file (1 parsed): 0 rejected")
    feed = feedparser.parse((site / "feeds" / "rss.xml").read_bytes())
    assert not feed.bozo
    assert [entry.title for entry in feed.entries] == ["Welcome to your news site"]
    assert feed.feed.title == "Mynews news"
    assert (site / "feeds" / "topics" / "getting-started" / "atom.xml").is_file()
    assert (aggregator("check", cwd=site).returncode, aggregator("check", cwd=site).stderr) == (
        0,
        "",
    )
    ignored = (site / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/feeds/" in ignored and "/.aggregator/" in ignored


def test_init_never_overwrites(tmp_path: Path) -> None:
    assert aggregator("init", "--title", "Désirée's news", cwd=tmp_path).returncode == 0
    config = tmp_path / "config.toml"
    assert load_config(config).site.title == "Désirée's news"
    config.write_text(config.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    (tmp_path / ".gitignore").unlink()
    before = everything(tmp_path)
    again = aggregator("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
    assert again.stderr == (
        "aggregator: config.toml, records/2026-01-05-welcome-to-your-news-site.md: already "
        "there; nothing was written (init never overwrites)\n"
    )
    assert everything(tmp_path) == before  # not even the missing .gitignore


def test_init_into_something_that_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file", encoding="utf-8")
    result = aggregator("init", "taken", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("aggregator: cannot create the site: ")
    assert "Traceback" not in result.stderr


SETTING = re.compile(r"^# ?(\[\[?[a-z_.]+\]\]?|[a-z_]+ = .*)$")


def test_every_commented_setting_in_the_new_config_is_valid_and_the_default(
    tmp_path: Path, capsys
) -> None:
    """Uncomment every optional table and setting of the generated config: it still
    loads, and it means what the config without them means (the defaults shown are the
    defaults)."""
    assert run(["init", str(tmp_path)], capsys)[0] == 0
    config = tmp_path / "config.toml"
    plain = load_config(config)
    lines = config.read_text(encoding="utf-8").splitlines()
    opened = [SETTING.sub(r"\1", line) for line in lines]
    assert sum(a != b for a, b in zip(lines, opened, strict=True)) > 35
    tables = ("[records]", "[clustering]", "[ranking]", "[feeds]", "[[filters]]",
              "[[webhooks]]", "[fetch]", "[limits]", "[build]")  # fmt: skip
    for table in tables:
        assert table in opened, f"{table} is not in the new config"
    config.write_text("\n".join(opened) + "\n", encoding="utf-8")
    (tmp_path / "templates").mkdir()  # `[site] templates` names a folder that must exist
    everything_on = load_config(config)
    for table in ("records", "ranking", "feeds", "fetch", "limits", "build", "clustering"):
        assert getattr(everything_on, table) == getattr(plain, table), table
    assert [f.topics for f in everything_on.filters] == [("Example",)]
    assert [w.url for w in everything_on.webhooks] == ["https://hooks.example.org/news"]
    assert everything_on.site.websub_hub is not None  # the example hub is a valid URL
    assert everything_on.storage is not None and everything_on.storage.bucket == "my-bucket"
    assert [s.url for s in everything_on.sources][1].startswith("https://")


def test_a_missing_config_says_how_to_make_one(tmp_path: Path) -> None:
    result = aggregator("build", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "aggregator: config error: config.toml: (file): config file not found; "
        "'aggregator init' makes a new site there, or pass --config PATH"
    )
    elsewhere = aggregator("check", "--config", "site/config.toml", cwd=tmp_path)
    assert "'aggregator init site' makes a new site there" in elsewhere.stderr


# --- topics --------------------------------------------------------------------------------


def topic_site(folder: Path) -> Path:
    """Nine AI stories from three providers (the feeds hold 5: two a provider, at most
    5 items), three about Robots; one bad record."""
    records = folder / "records"
    for n in range(1, 10):
        provider = {"name": f"Outlet {n % 3}", "domain": f"outlet{n % 3}.example"}
        topics = ["AI", "Robots"] if n <= 3 else ["AI"]
        write_record(records, f"r{n}.md", fields(n, topics=topics, provider=provider))
    write_record(records, "bad.md", fields(99, title=""))
    extra = "[feeds]\nmax_items = 5\n[ranking]\nmax_per_provider = 2\n"
    return write_config(folder, ["records"], extra)


def test_topics_lists_every_feed_with_what_subscribers_get(tmp_path: Path, capsys) -> None:
    config = topic_site(tmp_path)
    code, out, err = run(["topics", "--config", str(config)], capsys)
    assert code == 1  # the bad record, reported as by check
    assert "bad.md:3: error: title" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / ".aggregator").exists()
    base = "https://feeds.example.org/news/"
    assert out.splitlines() == [
        "TOPIC         SLUG    STORIES  ITEMS  RSS FEED",
        f"(all topics)  -             9      5  {base}rss.xml",
        f"AI            ai            9      5  {base}topics/ai/rss.xml",
        f"Robots        robots        3      3  {base}topics/robots/rss.xml",
        "2 topics; Atom and JSON Feed beside each RSS feed (atom.xml, feed.json)",
    ]
    code, out, _ = run(["topics", "--json", "-q", "--config", str(config)], capsys)
    listing = json.loads(out)
    assert listing["all"] == {
        "stories": 9, "items": 5, "rss": f"{base}rss.xml", "atom": f"{base}atom.xml",
        "json_feed": f"{base}feed.json", "page": base,
    }  # fmt: skip
    assert [(t["name"], t["slug"], t["stories"], t["items"]) for t in listing["topics"]] == [
        ("AI", "ai", 9, 5),
        ("Robots", "robots", 3, 3),
    ]
    # What the listing says is what a build publishes.
    assert run(["build", "-q", "--config", str(config)], capsys)[0] == 1
    for topic in listing["topics"]:
        local = tmp_path / "out" / topic["rss"].removeprefix(base)
        assert len(feedparser.parse(local.read_bytes()).entries) == topic["items"]
        for key in ("atom", "json_feed"):
            assert (tmp_path / "out" / topic[key].removeprefix(base)).is_file()


# --- build --dry-run -------------------------------------------------------------------


def rss_items(path: Path) -> list[tuple[str, str]]:
    return [(e.title, e.id) for e in feedparser.parse(path.read_bytes()).entries]


def test_dry_run_shows_what_a_build_would_change_and_writes_nothing(
    tmp_path: Path, capsys
) -> None:
    records = tmp_path / "records"
    for n in range(1, 7):
        write_record(records, f"r{n}.md", fields(n, topics=["AI", "Space" if n < 6 else "Gone"]))
    config = str(write_config(tmp_path, ["records"], "[feeds]\nmax_items = 4\n"))

    before = everything(tmp_path)
    code, out, err = run(["build", "--dry-run", "--config", config], capsys)
    assert (code, err) == (0, "")
    assert everything(tmp_path) == before, "a dry run wrote something"
    assert out.splitlines()[-1].startswith(
        "dry run: 4 feeds added, 0 rewritten, 0 removed, 0 unchanged; 13 items in, 0 out; "
        "18 files would be written and 0 deleted; nothing written"
    )
    assert "would add topics/gone/ (Gone): 1 item" in out

    assert run(["build", "-q", "--config", config], capsys)[0] == 0
    built = everything(tmp_path)
    output = tmp_path / "out"
    old = {path: rss_items(output / path) for path in ("rss.xml", "topics/ai/rss.xml")}
    code, out, _ = run(["build", "-n", "--config", config], capsys)
    assert out.splitlines() == [
        "dry run: 0 feeds added, 0 rewritten, 0 removed, 4 unchanged; 0 items in, 0 out; "
        + out.splitlines()[0].split("0 out; ")[1]
    ]
    assert "0 files would be written and 0 deleted" in out
    assert everything(tmp_path) == built
    # The parse cache is read (read-only: the tree above is unchanged), so nothing is parsed.
    assert plan_site(load_config(Path(config))).report().parsed == 0

    # A new top story in a new topic, and the only "Gone" story is unpublished.
    write_record(records, "new.md", fields(40, title="Fresh news", topics=["AI", "Robots"],
                                           publishedDateTime="2026-11-30T12:00:00Z"))  # fmt: skip
    write_record(records, "r6.md", fields(6, topics=["AI", "Gone"], published=False))
    edited = everything(tmp_path)
    code, out, err = run(["build", "--dry-run", "--config", config], capsys)
    assert code == 0
    assert everything(tmp_path) == edited, "a dry run wrote something"
    lines = out.splitlines()
    assert "would add topics/robots/ (Robots): 1 item" in lines
    assert "would remove topics/gone/ (Gone): 0 in, 1 out" in lines
    assert lines[-1].startswith(
        "dry run: 1 feed added, 2 rewritten, 1 removed, 1 unchanged; 3 items in, 3 out; "
        "13 files would be written and 4 deleted; nothing written"
    )
    rewrite = next(line for line in lines if line.startswith("would rewrite topics/ai/"))
    assert rewrite == (
        "would rewrite topics/ai/ (AI): rss.xml, atom.xml, feed.json, index.html; 1 in, 1 out"
    )
    block = lines[lines.index(rewrite) + 1 : lines.index(rewrite) + 3]
    fresh = "https://www.outlet40.example/2026/11/story-40"
    assert block[0] == f"  + Fresh news <{fresh}>"
    assert block[1].startswith("  - ")

    # The build does exactly that.
    code, written, _ = run(["build", "-v", "--config", config], capsys)
    assert code == 0
    new = {path: rss_items(output / path) for path in old}
    entered = set(new["topics/ai/rss.xml"]) - set(old["topics/ai/rss.xml"])
    left = set(old["topics/ai/rss.xml"]) - set(new["topics/ai/rss.xml"])
    assert entered == {("Fresh news", fresh)}
    assert {f"  - {title} <{guid}>" for title, guid in left} == {block[1]}
    said = {line.removeprefix("would write ") for line in lines if line.startswith("would write")}
    wrote = {
        Path(line.removeprefix("wrote ")).relative_to(output).as_posix()
        for line in written.splitlines()
        if line.startswith("wrote ")
    }
    assert said <= wrote
    for line in lines:
        match = re.match(r"would (?:rewrite|add) (\S+) \(.*?\)(?:: ([a-z., ]+\.[a-z]+);)?", line)
        if match and match.group(2):
            folder = "" if match.group(1) == "./" else match.group(1)
            said |= {folder + name for name in match.group(2).split(", ")}
        elif match:
            folder = match.group(1)
            said |= {folder + name for name in ("rss.xml", "atom.xml", "feed.json", "index.html")}
    assert said == wrote, "the dry run named exactly the files the build wrote"
    assert not (output / "topics" / "gone").exists()


# --- help --------------------------------------------------------------------------------


def test_every_command_has_a_description_exit_codes_and_an_example(capsys) -> None:
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([command.name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: aggregator {command.name} ")
        assert command.description.split()[0] in text
        assert "exit codes:\n  0    all well" in text
        assert f"examples:\n  aggregator {command.name}" in text


def test_verbose_says_what_it_does_for_each_command(capsys) -> None:
    def help_for(name: str) -> str:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        return " ".join(capsys.readouterr().out.split())

    assert "-v, --verbose list every file written" in help_for("build")
    assert "-v, --verbose also list every record file and URL read" in help_for("check")
    assert "-v, --verbose log every request" in help_for("serve")


def test_check_verbose_lists_the_files_read(tmp_path: Path, capsys) -> None:
    records = tmp_path / "records"
    write_record(records, "a.md", fields(1))
    write_record(records, "b.md", fields(2))
    config = str(write_config(tmp_path, ["records"]))
    code, out, _ = run(["check", "-v", "--config", config], capsys)
    assert code == 0
    assert out.splitlines()[:2] == [f"read {records / 'a.md'}", f"read {records / 'b.md'}"]
    assert "nothing written" in out.splitlines()[2]


def test_a_bad_option_prints_the_usage_of_its_command() -> None:
    result = aggregator("build", "--bogus", cwd=Path.cwd())
    assert result.returncode == 2
    assert result.stderr.startswith("usage: aggregator build [-h] [--config PATH]")
    assert "aggregator build: error: unrecognized arguments: --bogus" in result.stderr
    serve = aggregator("serve", "--port", "http", cwd=Path.cwd())
    assert serve.returncode == 2 and serve.stderr.startswith("usage: aggregator serve")


def test_version(capsys) -> None:
    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit) as done:
            main([flag])
        assert done.value.code == 0
        assert capsys.readouterr().out == f"aggregator {__version__}\n"


def test_dry_run_of_a_site_with_archives_after_a_build_changes_nothing(
    tmp_path: Path, capsys
) -> None:
    records = tmp_path / "records"
    for n in range(1, 8):
        write_record(records, f"r{n}.md", fields(n))
    extra = "[feeds]\nmax_items = 4\narchive = true\narchive_page_size = 3\n"
    config = str(write_config(tmp_path, ["records"], extra))
    assert run(["build", "-q", "--config", config], capsys)[0] == 0
    assert (tmp_path / "out" / "archive" / "rss-2.xml").is_file()  # the feed links to two
    code, out, _ = run(["build", "--dry-run", "--config", config], capsys)
    assert code == 0
    assert out.startswith("dry run: 0 feeds added, 0 rewritten, 0 removed, 2 unchanged;")


def test_topics_shows_each_topics_own_feed_settings(tmp_path: Path, capsys) -> None:
    config = topic_site(tmp_path)
    with config.open("a", encoding="utf-8") as out:
        out.write('\n[feeds.topics.Robots]\nmax_items = 2\n\n[feeds.topics."ai"]\nhidden = true\n')
    code, out, _ = run(["topics", "--json", "--config", str(config)], capsys)
    assert code == 1  # the bad record
    listing = json.loads(out)
    assert [(t["name"], t["stories"], t["items"]) for t in listing["topics"]] == [
        ("Robots", 3, 2)
    ]
