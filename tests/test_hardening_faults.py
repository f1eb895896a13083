"""Faults and hostile input that must neither hang a build nor lose records silently:
huge topic lists, slow-drip servers, truncated feeds, redirects to private addresses,
live markup in JSON Feed summaries, invisible titles."""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from werkzeug import Response

from aggregator.cli import main
from aggregator.config import FetchConfig, SiteConfig
from aggregator.rank import FeedPlan
from aggregator.render.feeds import render_feeds
from aggregator.sources.http import RefusedAddress, fetch_url
from aggregator.validate import RecordDefaults, records_from_text

from .conftest import drip_server, running_server
from .factories import (
    BASE_URL,
    DEFAULTS,
    FAST_FETCH,
    failing_writes,
    feed_entries,
    fields,
    make_record,
    missing_feed_links,
    rss_feed,
    seed_page,
    url_source,
    write_config,
    write_record,
)

# --- 1. topics per record ---------------------------------------------------------------


def test_a_record_with_thousands_of_topics_builds_quickly_with_a_warning(
    tmp_path: Path, capsys
) -> None:
    topics = [f"Topic {n}" for n in range(5_000)]
    write_record(tmp_path / "records", "many.md", fields(1, topics=topics))
    config = write_config(tmp_path, ["records"])
    started = time.perf_counter()
    assert main(["build", "--config", str(config)]) == 0
    assert time.perf_counter() - started < 20  # 5 000 topics took over 300 s
    err = capsys.readouterr().err
    assert "5,000 topics, over the limit of 50 ([limits] max_topics_per_record)" in err
    assert "the first 50 kept" in err and "warning" in err
    pages = list((tmp_path / "out" / "topics").glob("*/rss.xml"))
    assert len(pages) == 50


def test_max_topics_per_record_is_configurable_and_keeps_the_first_ones() -> None:
    text = json.dumps(fields(1, topics=["A", "b", "B", "C", "D"]))
    defaults = RecordDefaults(
        50.0, 50.0, (), limits=type(DEFAULTS.limits)(max_topics_per_record=2)
    )
    result = records_from_text(text, "json", "r.json", defaults)
    assert result.records[0].topics == ("A", "b")
    assert [p.severity for p in result.problems] == ["warning"]


def test_categories_are_added_in_one_pass(tmp_path: Path) -> None:
    """feedgen's category() rebuilds its list on every call: 2 000 topics cost seconds."""
    many = tuple(f"Topic {n}" for n in range(3_000))
    record = replace(make_record(1), topics=many)
    site = SiteConfig("T", BASE_URL, tmp_path, "d", "en", "a")
    plan = FeedPlan(topic=None, items=(record,), total=1)
    started = time.perf_counter()
    rss, atom = render_feeds(site, plan, {})
    assert time.perf_counter() - started < 2
    assert rss.count(b"<category>") == 3_000 and atom.count(b"<category ") == 3_000


# --- 2. slow-drip servers ----------------------------------------------------------------

DEADLINES = """
[fetch]
allow_private_addresses = true
timeout = 2.0
retries = 0
request_deadline = 0.5
source_deadline = 1.0
build_deadline = 3.0
"""


@pytest.mark.parametrize("headers_fast", [False, True], ids=["headers", "body"])
def test_a_slow_drip_source_fails_by_its_deadline_and_the_rest_is_published(
    tmp_path: Path, capsys, headers_fast: bool
) -> None:
    with running_server() as server, drip_server(headers_fast=headers_fast) as drip:
        server.expect_request("/good.json").respond_with_data(
            seed_page([fields(1), fields(2)], 1, None), content_type="application/json"
        )
        sources = url_source(server.url_for("/good.json")) + url_source(drip.url())
        config = write_config(tmp_path, extra=sources + DEADLINES)
        started = time.perf_counter()
        code = main(["build", "--config", str(config)])
        elapsed = time.perf_counter() - started
    assert code == 1
    assert elapsed < 3  # the drip takes over 4 s; without deadlines the build waits it out
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if drip.url() in line)
    assert "no complete response within 0.5 s ([fetch] request_deadline)" in line
    assert "nothing published from it" in line
    rss = (tmp_path / "out" / "rss.xml").read_text(encoding="utf-8")
    assert "Story number 1" in rss and "Story number 2" in rss


def test_the_source_and_build_deadlines_bound_retries_and_queued_sources(
    tmp_path: Path, capsys
) -> None:
    settings = DEADLINES.replace("retries = 0", "retries = 5\nbackoff = 0.01\nconcurrency = 1")
    settings = settings.replace("build_deadline = 3.0", "build_deadline = 1.5")
    with drip_server() as drip:
        sources = "".join(url_source(drip.url(f"/{n}.json")) for n in range(6))
        config = write_config(tmp_path, extra=sources + settings)
        started = time.perf_counter()
        assert main(["build", "--config", str(config)]) == 1
        elapsed = time.perf_counter() - started
    assert elapsed < 3.5  # six sources one at a time, five retries each: 18 s of deadlines
    err = capsys.readouterr().err
    assert "([fetch] source_deadline)" in err
    assert "([fetch] build_deadline)" in err
    assert err.count("nothing published from it") == 6


def test_deadline_settings_are_checked(tmp_path: Path, capsys) -> None:
    extra = url_source("https://x.example/") + "[fetch]\nsource_deadline = 0\n"
    config = write_config(tmp_path, extra=extra)
    assert main(["check", "--config", str(config)]) == 2
    assert "fetch.source_deadline: expected a number greater than 0" in capsys.readouterr().err


# --- 3. truncated or emptied remote feeds ---------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        b'<rss version="2.0"><channel><title>broken<item><title>x</title></chan',
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>',
    ],
    ids=["truncated", "emptied"],
)
def test_a_broken_or_emptied_feed_keeps_the_last_good_copy(
    tmp_path: Path, capsys, broken: bytes
) -> None:
    good = rss_feed([fields(1), fields(2)])
    with running_server() as server:
        server.expect_ordered_request("/feed.xml").respond_with_data(
            good, content_type="application/rss+xml"
        )
        server.expect_ordered_request("/feed.xml").respond_with_data(
            broken, content_type="application/rss+xml"
        )
        config = write_config(tmp_path, extra=url_source(server.url_for("/feed.xml")) + FAST_FETCH)
        assert main(["build", "--config", str(config), "-q"]) == 0
        capsys.readouterr()
        assert main(["build", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "kept its 2 records from the last good fetch" in err
    assert "1 source failing" in out
    rss = (tmp_path / "out" / "rss.xml").read_text(encoding="utf-8")
    assert "Story number 1" in rss and "Story number 2" in rss


def test_a_truncated_feed_names_the_xml_error(tmp_path: Path, capsys) -> None:
    broken = rss_feed([fields(1), fields(2)])[:-30]
    with running_server() as server:
        server.expect_request("/feed.xml").respond_with_data(
            broken, content_type="application/rss+xml"
        )
        config = write_config(tmp_path, extra=url_source(server.url_for("/feed.xml")) + FAST_FETCH)
        assert main(["build", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "not well-formed XML (line" in err and "a truncated or broken feed" in err


def test_html_entities_in_a_feed_are_still_tolerated(tmp_path: Path) -> None:
    body = rss_feed([fields(1, title="Caf&eacute;&nbsp;news")])
    with running_server() as server:
        server.expect_request("/feed.xml").respond_with_data(
            body, content_type="application/rss+xml"
        )
        config = write_config(tmp_path, extra=url_source(server.url_for("/feed.xml")) + FAST_FETCH)
        assert main(["build", "--config", str(config), "-q"]) == 0
    assert "Café" in (tmp_path / "out" / "rss.xml").read_text(encoding="utf-8")


# --- 5. JSON Feed summary is plain text -------------------------------------------------------


@pytest.mark.parametrize(
    "excerpt",
    [
        "&lt;script&gt;alert(1)&lt;/script&gt; Text",
        "<textarea><img src=x onerror=alert(2)></textarea> Text",
        "&amp;lt;img src=x onerror=alert(3)&amp;gt; Text",
    ],
)
def test_json_feed_summary_carries_no_markup(tmp_path: Path, excerpt: str) -> None:
    write_record(tmp_path / "records", "r.md", fields(1, excerpt=excerpt))
    assert main(["build", "--config", str(write_config(tmp_path, ["records"])), "-q"]) == 0
    feed = json.loads((tmp_path / "out" / "feed.json").read_text(encoding="utf-8"))
    summary = feed["items"][0]["summary"]
    assert "<" not in summary and ">" not in summary and "alert(" not in summary
    assert summary.endswith("Text")


# --- 6. private addresses -----------------------------------------------------------------------


def test_first_requests_to_private_addresses_are_refused_by_default() -> None:
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                "http://[::1]:9/x", "http://localhost:9/x"):  # fmt: skip
        with pytest.raises(RefusedAddress) as caught:
            fetch_url(FetchConfig(retries=0), url)
        assert "refused" in caught.value.reason and url.split("/")[2] in str(caught.value)
    with pytest.raises(RefusedAddress, match="cloud metadata address"):
        fetch_url(FetchConfig(retries=0), "http://169.254.169.254/latest")


def test_a_redirect_to_a_metadata_address_is_refused_and_named(tmp_path: Path) -> None:
    """Allowing private addresses (an internal feed server) never allows link-local ones:
    a redirect to the cloud metadata service is refused before connecting."""
    with running_server() as server:
        target = "http://169.254.169.254/latest/meta-data/"
        redirect = Response(status=302, headers={"Location": target})
        server.expect_request("/feed.json").respond_with_response(redirect)
        with pytest.raises(RefusedAddress) as caught:
            fetch_url(FetchConfig(retries=0, allow_private_addresses=True),
                      server.url_for("/feed.json"))  # fmt: skip
    assert caught.value.reason == (
        f"redirected to {target}: 169.254.169.254 is a cloud metadata address; refused "
        "(never fetched)"
    )


def test_a_build_refuses_a_private_source_with_one_line(tmp_path: Path, capsys) -> None:
    with running_server() as server:
        server.expect_request("/feed.json").respond_with_data(
            seed_page([fields(1)], 1, None), content_type="application/json"
        )
        extra = FAST_FETCH.replace("allow_private_addresses = true", "")
        config = write_config(tmp_path, extra=url_source(server.url_for("/feed.json")) + extra)
        assert main(["build", "--config", str(config)]) == 1
        assert server.log == []  # not even connected to
    err = capsys.readouterr().err
    assert "127.0.0.1 is a loopback address; refused ([fetch] allow_private_addresses)" in err


# --- 9. invisible titles and bidi controls ------------------------------------------------------


def test_format_controls_are_stripped_and_an_invisible_title_is_rejected() -> None:
    text = json.dumps([
        fields(1, title="\u200b\u200b\ufeff"),
        fields(2, title="Safe \u202egnp.exe\u202c", topics=["A\u2066I\u2069", "\u200d"]),
        fields(3, title="Family 👨\u200d👩\u200d👧 and می\u200cخواهم"),
    ])  # fmt: skip
    result = records_from_text(text, "json", "r.json", DEFAULTS)
    [problem] = result.problems
    assert problem.field == "[0].title"
    assert "nothing visible once control and format characters are removed" in problem.reason
    assert result.records[0].title == "Safe gnp.exe"
    assert result.records[0].topics == ("AI",)
    assert result.records[1].title == "Family 👨\u200d👩\u200d👧 and می\u200cخواهم"


# --- 4. unreadable folders and shrunken sources -------------------------------------------------


def _unreadable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """`folder` cannot be listed, as with mode 000 for the user cron runs as (or an
    unmounted share). Injected as the OS error listing gives, since root reads anything:
    into both ways of listing (by name, and by type for a folder of many other files)."""
    for name in ("listdir", "scandir"):
        real = getattr(os, name)

        def refused(path, real=real):  # type: ignore[no-untyped-def]
            if os.path.realpath(path) == os.path.realpath(folder):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, name, refused)


def _titles(tmp_path: Path) -> set[str]:
    return {entry.title for entry in feed_entries(tmp_path / "out" / "rss.xml")}


@pytest.mark.parametrize("which", ["subfolder", "source folder"])
def test_an_unreadable_folder_is_reported_and_its_records_kept(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    for n in range(1, 4):
        write_record(tmp_path / "records", f"{n}.md", fields(n))
    for n in range(4, 6):
        write_record(tmp_path / "records" / "sub", f"{n}.md", fields(n))
    config = write_config(tmp_path, ["records"])
    assert main(["build", "--config", str(config), "-q"]) == 0
    everything = {f"Story number {n}" for n in range(1, 6)}
    assert _titles(tmp_path) == everything
    folder = tmp_path / "records" / ("sub" if which == "subfolder" else "")
    _unreadable(monkeypatch, folder)
    for _ in range(2):  # the second build starts from what the first remembered
        capsys.readouterr()
        assert main(["build", "--config", str(config)]) == 1
        err = capsys.readouterr().err
        assert "error: cannot read this folder: Permission denied" in err
        assert "kept the records its files gave at the last build" in err
        assert _titles(tmp_path) == everything
    monkeypatch.undo()
    assert main(["build", "--config", str(config), "-q"]) == 0
    assert _titles(tmp_path) == everything


def test_a_source_that_shrinks_past_max_shrink_is_held_until_accepted(
    tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "records"
    for n in range(1, 21):
        write_record(folder, f"{n}.md", fields(n))
    config = write_config(tmp_path, ["records"])
    assert main(["build", "--config", str(config), "-q"]) == 0
    for n in range(6, 21):
        (folder / f"{n}.md").unlink()
    for _ in range(2):
        capsys.readouterr()
        assert main(["build", "--config", str(config)]) == 1
        err = capsys.readouterr().err
        assert "5 records, down from 20 at the last build: more than 50% fewer" in err
        assert "--accept-shrink" in err
        assert len(_titles(tmp_path)) == 20
    assert main(["build", "--config", str(config), "--accept-shrink", "-q"]) == 0
    assert len(_titles(tmp_path)) == 5
    assert main(["build", "--config", str(config), "-q"]) == 0
    assert len(_titles(tmp_path)) == 5


def test_a_file_that_lost_most_of_its_records_is_held_too(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "all.json").write_text(json.dumps([fields(n) for n in range(1, 31)]), "utf-8")
    config = write_config(tmp_path, ["records"], "[build]\nmax_shrink = 0.2\n")
    assert main(["build", "--config", str(config), "-q"]) == 0
    (folder / "all.json").write_text(json.dumps([fields(n) for n in range(1, 21)]), "utf-8")
    for _ in range(2):
        assert main(["build", "--config", str(config)]) == 1
        assert "20 records, down from 30" in capsys.readouterr().err
        assert len(_titles(tmp_path)) == 30
    (folder / "all.json").write_text(json.dumps([fields(n) for n in range(1, 26)]), "utf-8")
    assert main(["build", "--config", str(config), "-q"]) == 0  # 25 of 30: within 20%
    assert len(_titles(tmp_path)) == 25


# --- 7. a full disk -------------------------------------------------------------------------------


def _site(folder: Path, topics: list[str]) -> None:
    for n, topic in enumerate(topics, 1):
        write_record(folder, f"{n}.md", fields(n, topics=[topic, "All"]))


def test_a_full_disk_at_any_write_stops_the_build_without_dangling_links(
    tmp_path: Path, capsys
) -> None:
    def rebuild(site: Path) -> Path:
        """A site built with topics A and B, then given a new topic C and changed pages."""
        _site(site / "records", ["A", "B"])
        config = write_config(site, ["records"])
        assert main(["build", "--config", str(config), "-q"]) == 0
        _site(site / "records", ["A", "B", "C"])
        return config

    probe = rebuild(tmp_path / "probe")
    with failing_writes(at=-1) as count:
        assert main(["build", "--config", str(probe), "-q"]) == 0
    writes = count[0]
    assert writes >= 12
    for at in range(writes):
        site = tmp_path / f"at-{at}"
        config = rebuild(site)
        capsys.readouterr()
        with failing_writes(at):
            code = main(["build", "--config", str(config), "-q"])
        err = capsys.readouterr().err
        assert code == 5, (at, err)
        assert "aggregator: write failed: " in err and "No space left on device" in err
        assert str(site / "out") in err  # names the file
        assert "config error" not in err
        out = site / "out"
        assert missing_feed_links(out) == [], at
        assert not list(out.rglob("*.aggregator-tmp"))
        empty = [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())]
        assert empty == [], at
        assert main(["build", "--config", str(config), "-q"]) == 0  # the next build finishes
        assert missing_feed_links(out) == []
        assert (out / "topics" / "c" / "rss.xml").is_file()


# --- 8. serve --build-every reports builds as builds, each problem once ---------------------


def test_serve_rounds_print_the_build_summary_and_each_problem_once(
    tmp_path: Path, capsys
) -> None:
    from aggregator.cli import _build_for_serve, _parser

    write_record(tmp_path / "records", "good.md", fields(1))
    write_record(tmp_path / "records", "bad.md", fields(2, webUrl="javascript:alert(1)"))
    config = write_config(tmp_path, ["records"])
    args = _parser().parse_args(["serve", "--config", str(config), "--build-every", "1"])
    seen: set[str] = set()
    _build_for_serve(args, seen)
    out, err = capsys.readouterr()
    assert "bad.md" in err and "error" in err
    assert "nothing written" not in out and "wrote " in out
    _build_for_serve(args, seen)
    out, err = capsys.readouterr()
    assert "bad.md" not in err  # shown once, not on every interval
    assert "wrote 0 of" in out
    write_record(tmp_path / "records", "worse.md", fields(3, publishedDateTime="soon"))
    _build_for_serve(args, seen)
    assert "worse.md" in capsys.readouterr().err  # a new problem is shown


# --- 10. link length, Windows names, line breaks, UTF-16 ------------------------------------------


def test_an_over_long_link_rejects_the_record() -> None:
    long_link = "https://news.example.org/" + "a" * 100_000
    text = json.dumps([fields(1, webUrl=long_link), fields(2)])
    result = records_from_text(text, "json", "r.json", DEFAULTS)
    [problem] = result.problems
    assert problem.field == "[0].webUrl"
    assert "100,025 characters, over the limit of 2,048 ([limits] max_url_chars)" in problem.reason
    assert [r.title for r in result.records] == ["Story number 2"]


def test_windows_reserved_names_never_become_slugs() -> None:
    from aggregator.topics import assign_slugs

    slugs = assign_slugs(["con", "nul", "aux", "prn", "com1", "lpt9", "console"])
    assert slugs["console"] == "console"
    for key in ("con", "nul", "aux", "prn", "com1", "lpt9"):
        assert slugs[key].startswith(f"{key}-") and len(slugs[key]) > len(key) + 4


def test_a_file_with_cr_only_line_breaks_is_read(tmp_path: Path) -> None:
    from aggregator.validate import load_record_file

    from .factories import markdown

    path = tmp_path / "mac.md"
    path.write_bytes(markdown(fields(1)).replace("\n", "\r").encode())
    result = load_record_file(str(path), DEFAULTS)
    assert [r.title for r in result.records] == ["Story number 1"] and not result.problems


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_named_as_such(tmp_path: Path, encoding: str) -> None:
    from aggregator.validate import load_record_file

    from .factories import markdown

    path = tmp_path / "wide.md"
    path.write_bytes(markdown(fields(1)).encode(encoding))
    [problem] = load_record_file(str(path), DEFAULTS).problems
    assert problem.reason == "UTF-16 text; only UTF-8 is read (save the file as UTF-8)"
    assert problem.action == "file skipped"
