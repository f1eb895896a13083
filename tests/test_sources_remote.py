"""Remote sources end to end: real server on 127.0.0.1, real builds, feeds read back."""

from __future__ import annotations

import io
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.pipeline import build
from aggregator.progress import SilentProgress, TerminalProgress, progress_for
from aggregator.report import BuildReport
from aggregator.sources.remote import collect_remote, page_url
from aggregator.state.sqlite import SqliteStore

from .conftest import HeldResponse, conditional, running_server
from .factories import (
    CORPUS,
    FAST_FETCH,
    feed_entries,
    feed_links,
    fields,
    rss_feed,
    seed_page,
    url_source,
    write_config,
)

# Every record in the feeds: no item cap, no per-provider cap.
ALL_ITEMS = FAST_FETCH + "\n[feeds]\nmax_items = 500\n[ranking]\nmax_per_provider = 500\n"


def run_build(config_path: Path) -> BuildReport:
    return build(load_config(config_path))


def errors(report: BuildReport) -> list[str]:
    return [str(p) for p in report.problems if p.severity == "error"]


def all_feed_links(tmp_path: Path) -> set[str]:
    return feed_links(tmp_path / "out" / "rss.xml")


# --- every document kind ---------------------------------------------------------------------

ONE = fields(1)
TWO = fields(2, topics=["Cloud"])
MARKDOWN = ("---\n" + yaml.safe_dump(ONE) + "---\n\nBody text.\n").encode()
ATOM = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Example</title>
<link href="https://atom.example.org/"/><id>urn:x</id><updated>2024-03-02T00:00:00Z</updated>
<entry><title>Story number 1</title><link href="{ONE["webUrl"]}"/><id>urn:1</id>
<updated>2024-03-02T01:00:00Z</updated><summary>What happened.</summary>
<category term="AI"/></entry></feed>""".encode()
JSON_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON Feed Example",
        "home_page_url": "https://jf.example.org/",
        "items": [
            {"id": "1", "url": ONE["webUrl"], "title": ONE["title"], "tags": ["AI"],
             "date_published": ONE["publishedDateTime"], "image": "https://jf.example.org/1.png"},
        ],
    }
).encode()  # fmt: skip

DOCUMENTS = {
    "markdown front matter": (MARKDOWN, "text/markdown; charset=utf-8", [ONE]),
    "markdown as text/plain": (MARKDOWN, "text/plain", [ONE]),
    "yaml record": (yaml.safe_dump(ONE).encode(), "application/yaml", [ONE]),
    "json object": (json.dumps(ONE).encode(), "application/json", [ONE]),
    "json list": (json.dumps([ONE, TWO]).encode(), "application/json", [ONE, TWO]),
    "json value": (json.dumps({"value": [ONE, TWO]}).encode(), "application/json", [ONE, TWO]),
    "json news": (json.dumps({"news": [ONE, TWO]}).encode(), "application/json", [ONE, TWO]),
    "json items": (json.dumps({"items": [ONE, TWO]}).encode(), "text/plain", [ONE, TWO]),
    "seed api page": (seed_page([ONE, TWO], 1, None), "application/json", [ONE, TWO]),
    "rss": (rss_feed([ONE, TWO]), "application/rss+xml", [ONE, TWO]),
    "atom as text/xml": (ATOM, "text/xml", [ONE]),
    "json feed": (JSON_FEED, "application/feed+json", [ONE]),
}


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_every_document_kind_becomes_records(server: HTTPServer, tmp_path: Path, kind: str) -> None:
    body, content_type, expected = DOCUMENTS[kind]
    server.expect_request("/doc").respond_with_data(body, content_type=content_type)
    report = run_build(
        write_config(tmp_path, extra=url_source(server.url_for("/doc")) + FAST_FETCH)
    )
    assert errors(report) == []
    assert report.records == len(expected)
    assert all_feed_links(tmp_path) == {item["webUrl"] for item in expected}


def test_bad_records_in_a_good_body_are_reported_and_the_rest_published(
    server: HTTPServer, tmp_path: Path
) -> None:
    body = json.dumps([ONE, {"webUrl": "https://x.example/2", "publishedDateTime": "2024-01-01"}])
    server.expect_request("/list.json").respond_with_data(body, content_type="application/json")
    url = server.url_for("/list.json")
    code = main(
        ["build", "-q", "--config", str(write_config(tmp_path, extra=url_source(url) + FAST_FETCH))]
    )
    assert code == 1
    assert all_feed_links(tmp_path) == {ONE["webUrl"]}


# --- paging ----------------------------------------------------------------------------------


def test_page_url_rule() -> None:
    first = "https://everyday.example/api/news/index.json"
    assert (
        page_url(first, "page/{n}/index.json", "2")
        == "https://everyday.example/api/news/page/2/index.json"
    )
    assert (
        page_url("https://e.example/api/news/", "page/{n}/index.json", "3")
        == "https://e.example/api/news/page/3/index.json"
    )
    assert (
        page_url(first, "index-{n}.json", "2") == "https://everyday.example/api/news/index-2.json"
    )
    assert (
        page_url(first, "page/{n}/index.json", "/api/news/p/2.json")
        == "https://everyday.example/api/news/p/2.json"
    )


def _serve_api_pages(server: HTTPServer, api: Path, served: list[str]) -> None:
    for relative in ("index.json", "page/2/index.json", "page/3/index.json"):
        body = (api / relative).read_bytes()
        server.expect_request(f"/api/news/{relative}").respond_with_handler(
            conditional(body, "application/json; charset=utf-8", served)
        )
    server.expect_request("/api/news/page/4/index.json").respond_with_data(b"Not Found", status=404)


def _api_links(api: Path) -> set[str]:
    links = set()
    for relative in ("index.json", "page/2/index.json", "page/3/index.json"):
        for item in json.loads((api / relative).read_text(encoding="utf-8"))["value"]:
            links.add(item["webUrl"] or item["originalUrl"])
    return links


def test_real_seed_api_pages_are_followed_and_a_missing_next_page_loses_nothing(
    server: HTTPServer, tmp_path: Path
) -> None:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    api = CORPUS / "everyday-powerapps-api" / "api" / "news"
    served: list[str] = []
    _serve_api_pages(server, api, served)
    url = server.url_for("/api/news/index.json")
    config = write_config(tmp_path, extra=url_source(url, topics=["Power Platform"]) + ALL_ITEMS)
    report = run_build(config)
    assert served == [
        "200 /api/news/index.json",
        "200 /api/news/page/2/index.json",
        "200 /api/news/page/3/index.json",
    ]
    assert report.records == 75  # 25 per page; page 3 comes from another commit
    assert all_feed_links(tmp_path) == {link.replace(" ", "%20") for link in _api_links(api)}
    # nextPage 4 does not exist: reported on one line, pages 1-3 kept.
    (line,) = errors(report)
    assert line.startswith(
        server.url_for("/api/news/page/4/index.json") + " (page 4 of " + url + "): error: "
    )
    assert "HTTP 404 Not Found (failing since " in line
    assert line.endswith("never fetched successfully; pages 1-3 still used")
    topic = feed_entries(tmp_path / "out" / "topics" / "power-platform" / "rss.xml")
    assert len(topic) == 75


def test_paging_stops_at_max_pages(server: HTTPServer, tmp_path: Path) -> None:
    for n in (1, 2, 3):
        path = "/news/index.json" if n == 1 else f"/news/page/{n}/index.json"
        server.expect_request(path).respond_with_data(seed_page([fields(n)], n, str(n + 1)))
    url = server.url_for("/news/index.json")
    report = run_build(write_config(tmp_path, extra=url_source(url, max_pages=2) + FAST_FETCH))
    assert errors(report) == []
    assert report.records == 2
    assert [entry[0].path for entry in server.log] == [
        "/news/index.json",
        "/news/page/2/index.json",
    ]


def test_paging_with_a_custom_template_and_a_page_loop(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/feed/news.json").respond_with_data(seed_page([fields(1)], 1, 2))
    server.expect_request("/feed/news-2.json").respond_with_data(
        seed_page([fields(2)], 2, "/feed/news.json")
    )
    url = server.url_for("/feed/news.json")
    report = run_build(
        write_config(tmp_path, extra=url_source(url, next_page="news-{n}.json") + FAST_FETCH)
    )
    assert errors(report) == []
    assert report.records == 2
    assert len(server.log) == 2  # page 2 pointing back to page 1 ends the walk


# --- conditional GET ---------------------------------------------------------------------------


def test_not_modified_build_reuses_records_without_parsing(
    server: HTTPServer, tmp_path: Path
) -> None:
    served: list[str] = []
    server.expect_request("/seed.json").respond_with_handler(
        conditional(seed_page([fields(n) for n in range(10)], 1, None), "application/json", served)
    )
    server.expect_request("/rss").respond_with_handler(
        conditional(
            rss_feed(
                [
                    fields(n, webUrl=f"https://feed.example.net/story/{n}", title=f"Feed item {n}")
                    for n in range(10)
                ]
            ),
            "application/rss+xml",
            served,
        )
    )
    sources = url_source(server.url_for("/seed.json")) + url_source(server.url_for("/rss"))
    config = write_config(tmp_path, extra=sources + ALL_ITEMS)
    cold = run_build(config)
    assert cold.fetch.bodies_parsed == 2 and cold.fetch.changed == 2
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.xml")}
    warm = run_build(config)
    assert sorted(served) == ["200 /rss", "200 /seed.json", "304 /rss", "304 /seed.json"]
    assert warm.fetch.bodies_parsed == 0
    assert warm.fetch.not_modified == 2
    assert (warm.records, warm.items, warm.written) == (20, 20, 0)
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.xml")} == before
    assert "0 bodies parsed" in warm.summary()


def test_last_modified_alone_is_enough_for_a_304(server: HTTPServer, tmp_path: Path) -> None:
    stamp = "Mon, 04 Mar 2024 10:00:00 GMT"

    def handler(request: Request) -> Response:
        if request.headers.get("If-Modified-Since") == stamp:
            return Response(b"", 304)
        return Response(
            json.dumps([ONE]), 200, {"Last-Modified": stamp, "Content-Type": "application/json"}
        )

    server.expect_request("/lm.json").respond_with_handler(handler)
    config = write_config(tmp_path, extra=url_source(server.url_for("/lm.json")) + FAST_FETCH)
    assert run_build(config).fetch.bodies_parsed == 1
    warm = run_build(config)
    assert (warm.fetch.bodies_parsed, warm.fetch.not_modified, warm.records) == (0, 1, 1)


# --- failures --------------------------------------------------------------------------------


def test_server_error_then_success_within_one_build(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_ordered_request("/flaky.json").respond_with_data(b"", status=500)
    server.expect_ordered_request("/flaky.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    report = run_build(
        write_config(tmp_path, extra=url_source(server.url_for("/flaky.json")) + FAST_FETCH)
    )
    assert errors(report) == []
    assert report.records == 1 and report.fetch.requests == 2


def test_a_source_that_goes_down_keeps_its_records_in_the_feeds(
    server: HTTPServer, tmp_path: Path
) -> None:
    healthy = True

    def handler(request: Request) -> Response:
        if healthy:
            return Response(rss_feed([ONE, TWO]), 200, {"Content-Type": "application/rss+xml"})
        return Response(b"down for maintenance", 503)

    server.expect_request("/rss").respond_with_handler(handler)
    server.expect_request("/other.json").respond_with_data(
        json.dumps([fields(3)]), content_type="application/json"
    )
    url = server.url_for("/rss")
    config = write_config(
        tmp_path, extra=url_source(url) + url_source(server.url_for("/other.json")) + FAST_FETCH
    )
    assert errors(run_build(config)) == []
    before = all_feed_links(tmp_path)
    assert before == {ONE["webUrl"], TWO["webUrl"], fields(3)["webUrl"]}
    healthy = False
    down = run_build(config)
    (line,) = errors(down)
    assert line.startswith(f"{url}: error: HTTP 503 Service Unavailable (failing since ")
    assert "kept its 2 records from the last good fetch (" in line
    assert all_feed_links(tmp_path) == before
    assert main(["build", "-q", "--config", str(config)]) == 1


def test_failing_since_is_remembered_across_runs(server: HTTPServer, tmp_path: Path) -> None:
    healthy = True

    def handler(request: Request) -> Response:
        return Response(json.dumps([ONE]), 200) if healthy else Response(b"", 500)

    server.expect_request("/s.json").respond_with_handler(handler)
    config = load_config(
        write_config(tmp_path, extra=url_source(server.url_for("/s.json")) + FAST_FETCH)
    )
    day = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
    with SqliteStore.open(tmp_path / "state.db") as store:

        def run(moment: datetime) -> list[str]:
            collection = collect_remote(config, store, now=lambda: moment)
            return [str(p) for r in collection.results for p in r.problems]

        assert run(day) == []
        healthy = False
        first = run(day + timedelta(hours=1))
        later = run(day + timedelta(hours=5))
        assert first == later
        assert "failing since 2024-03-04 09:00:00 UTC" in later[0]
        assert "last good fetch (2024-03-04 08:00:00 UTC)" in later[0]
        healthy = True
        assert run(day + timedelta(hours=6)) == []
        healthy = False
        assert "failing since 2024-03-04 15:00:00 UTC" in run(day + timedelta(hours=7))[0]


def test_a_source_that_never_succeeded_contributes_nothing(
    server: HTTPServer, tmp_path: Path
) -> None:
    server.expect_request("/ok.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    server.expect_request("/missing.json").respond_with_data(b"", status=404)
    missing = server.url_for("/missing.json")
    report = run_build(
        write_config(
            tmp_path,
            extra=url_source(server.url_for("/ok.json")) + url_source(missing) + FAST_FETCH,
        )
    )
    assert report.records == 1
    (line,) = errors(report)
    assert line.startswith(f"{missing}: error: HTTP 404 Not Found (failing since ")
    assert line.endswith("nothing published from it: it has never been fetched successfully")


def test_garbage_body_after_a_good_fetch_keeps_the_last_good_records(
    server: HTTPServer, tmp_path: Path
) -> None:
    bodies = [json.dumps([ONE, TWO]).encode(), b"\x89PNG\r\n\x1a\n\x00\x00garbage"]
    server.expect_ordered_request("/s.json").respond_with_data(
        bodies[0], content_type="application/json"
    )
    server.expect_ordered_request("/s.json").respond_with_data(
        bodies[1], content_type="application/json"
    )
    url = server.url_for("/s.json")
    config = write_config(tmp_path, extra=url_source(url) + FAST_FETCH)
    run_build(config)
    report = run_build(config)
    (line,) = errors(report)
    assert line.startswith(f"{url}: error: body not usable: binary file")
    assert "kept its 2 records" in line
    assert report.records == 2 and all_feed_links(tmp_path) == {ONE["webUrl"], TWO["webUrl"]}


def test_gone_is_reported_as_such_and_keeps_the_last_records(
    server: HTTPServer, tmp_path: Path
) -> None:
    server.expect_ordered_request("/s.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    server.expect_ordered_request("/s.json").respond_with_data(b"", status=410)
    config = write_config(tmp_path, extra=url_source(server.url_for("/s.json")) + FAST_FETCH)
    run_build(config)
    (line,) = errors(run_build(config))
    assert "HTTP 410 Gone: removed for good by its server; drop it from the config" in line
    assert "kept its 1 record " in line


def test_permanent_redirect_is_reported_and_remembered(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/old.json").respond_with_data(
        b"", status=301, headers={"Location": "/new.json"}
    )
    server.expect_request("/new.json").respond_with_handler(
        conditional(json.dumps([ONE]).encode(), "application/json")
    )
    old, new = server.url_for("/old.json"), server.url_for("/new.json")
    config = write_config(tmp_path, extra=url_source(old) + FAST_FETCH)
    first = run_build(config)
    assert errors(first) == [] and first.records == 1
    (warning,) = [str(p) for p in first.problems]
    assert (
        warning
        == f"{old}: warning: moved permanently to {new}; fetched from there; update the config"
    )
    server.clear_log()
    second = run_build(config)
    assert [entry[0].path for entry in server.log] == ["/new.json"]  # straight to the new place
    assert second.fetch.not_modified == 1 and second.records == 1
    assert main(["build", "-q", "--config", str(config)]) == 0  # a warning is not a failure


def test_per_source_timeout_isolates_a_slow_source(server: HTTPServer, tmp_path: Path) -> None:
    slow = HeldResponse(server, json.dumps([TWO]).encode())
    server.expect_request("/slow.json").respond_with_handler(slow)
    server.expect_request("/fast.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    slow_url = server.url_for("/slow.json")
    sources = url_source(slow_url, timeout=0.2) + url_source(server.url_for("/fast.json"))
    report = run_build(
        write_config(tmp_path, extra=sources + FAST_FETCH.replace("retries = 1", "retries = 0"))
    )
    (line,) = errors(report)
    assert line.startswith(f"{slow_url}: error: timed out after 0.2 s (failing since ")
    assert all_feed_links(tmp_path) == {ONE["webUrl"]}
    slow.finish(requests=2)


def test_oversized_body_is_reported(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/big.json").respond_with_data(
        json.dumps([ONE] * 100), content_type="application/json"
    )
    report = run_build(
        write_config(
            tmp_path,
            extra=url_source(server.url_for("/big.json")) + FAST_FETCH + "max_bytes = 1000\n",
        )
    )
    (line,) = errors(report)
    assert "response body larger than 1000 bytes; not read" in line


# --- duplicates, acceptance ------------------------------------------------------------------


def test_two_sources_carrying_the_same_story_are_merged(server: HTTPServer, tmp_path: Path) -> None:
    story = fields(7, quality=80)
    tracked = dict(story, webUrl=story["webUrl"] + "?utm_source=feed")
    server.expect_request("/seed.json").respond_with_data(seed_page([story, ONE], 1, None))
    server.expect_request("/rss").respond_with_data(
        rss_feed([dict(tracked, topics=["Robotics"])]), content_type="application/rss+xml"
    )
    sources = url_source(server.url_for("/seed.json")) + url_source(
        server.url_for("/rss"), topics=["Feeds"]
    )
    report = run_build(write_config(tmp_path, extra=sources + FAST_FETCH))
    assert (report.records, report.duplicates, report.items) == (3, 1, 2)
    entries = feed_entries(tmp_path / "out" / "rss.xml")
    (merged,) = [e for e in entries if e.link.startswith(story["webUrl"])]
    assert {tag.term for tag in merged.tags} == {"AI", "Robotics", "Feeds"}


def test_directory_json_pages_and_rss_together_then_the_server_goes_away(
    tmp_path: Path, capsys
) -> None:
    records_dir = tmp_path / "records"
    records_dir.mkdir()
    local = fields(100)
    (records_dir / "local.md").write_text(
        "---\n" + yaml.safe_dump(local) + "---\n", encoding="utf-8"
    )
    page_one = [fields(n) for n in range(1, 4)]
    page_two = [fields(n) for n in range(4, 6)]
    rss_items = [fields(n, topics=["Cloud"]) for n in range(10, 13)]
    with running_server() as server:
        server.expect_request("/api/news/index.json").respond_with_handler(
            conditional(seed_page(page_one, 1, "2"), "application/json")
        )
        server.expect_request("/api/news/page/2/index.json").respond_with_handler(
            conditional(seed_page(page_two, 2, None), "application/json")
        )
        server.expect_request("/feed.xml").respond_with_handler(
            conditional(rss_feed(rss_items), "application/rss+xml")
        )
        seed_url, rss_url = server.url_for("/api/news/index.json"), server.url_for("/feed.xml")
        sources = (
            f'[[sources]]\npath = "{records_dir}"\n' + url_source(seed_url) + url_source(rss_url)
        )
        config = write_config(tmp_path, extra=sources + ALL_ITEMS)
        assert main(["build", "--config", str(config)]) == 0
    expected = {r["webUrl"] for r in [local, *page_one, *page_two, *rss_items]}
    assert all_feed_links(tmp_path) == expected
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.xml")}
    capsys.readouterr()

    # The server is gone: the build says so, per source, and the feeds lose nothing.
    assert main(["build", "--config", str(config)]) == 1
    err = capsys.readouterr().err.splitlines()
    failing = [line for line in err if ": error: connection refused (failing since " in line]
    assert sorted(line.split(": error:")[0] for line in failing) == sorted([seed_url, rss_url])
    assert any("kept its 5 records" in line for line in failing)
    assert any("kept its 3 records" in line for line in failing)
    assert all_feed_links(tmp_path) == expected
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.xml")} == before


# --- config, progress, check -------------------------------------------------------------------


def test_source_settings_are_read(tmp_path: Path) -> None:
    sources = url_source(
        "https://x.example/api/news/index.json",
        topics=["A", " B "],
        quality=80,
        heat=10,
        max_pages=3,
        next_page="p{n}.json",
        timeout=4.5,
        name="X",
    )
    (source,) = load_config(write_config(tmp_path, extra=sources + FAST_FETCH)).sources
    assert (source.url, source.name, source.topics) == (
        "https://x.example/api/news/index.json",
        "X",
        ("A", "B"),
    )
    assert (source.quality, source.heat, source.max_pages, source.next_page, source.timeout) == (
        80,
        10,
        3,
        "p{n}.json",
        4.5,
    )
    default = load_config(
        write_config(tmp_path, extra=url_source("https://x.example/a.json") + FAST_FETCH)
    ).sources[0]
    assert (default.max_pages, default.next_page, default.timeout, default.quality) == (
        10,
        "page/{n}/index.json",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("sources", "key"),
    [
        (url_source("https://x.example/a.json", next_page="page.json"), "sources[1].next_page"),
        (url_source("ftp://x.example/a.json"), "sources[1].url"),
        (url_source("https://x.example/a.json", quality=101), "sources[1].quality"),
        (url_source("https://x.example/a.json", timeout=0), "sources[1].timeout"),
        (url_source("https://x.example/a.json", max_pages=0), "sources[1].max_pages"),
        ('[[sources]]\npath = "."\ntopics = ["A"]\n', "sources[1].topics"),
    ],
)
def test_bad_source_settings_name_the_key(tmp_path: Path, sources: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, extra=sources + FAST_FETCH))
    assert caught.value.key == key


def test_progress_bar_only_on_a_terminal() -> None:
    assert isinstance(progress_for(io.StringIO()), SilentProgress)
    main_end, side_end = os.openpty()
    with os.fdopen(side_end, "w") as terminal:
        progress = progress_for(terminal)
        assert isinstance(progress, TerminalProgress)
        progress.start(2)
        progress.advance("https://a.example/feed")
        progress.advance("https://b.example/feed")
        progress.finish()
    # One read may return only part of what was drawn: read until the closed terminal
    # side is drained (Linux then answers EIO).
    chunks = []
    while True:
        try:
            chunk = os.read(main_end, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_end)
    drawn = b"".join(chunks).decode()
    assert "fetching [" in drawn and "2/2 https://b.example/feed" in drawn


def test_build_without_a_terminal_prints_no_progress(
    server: HTTPServer, tmp_path: Path, capsys
) -> None:
    server.expect_request("/a.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    assert (
        main(
            [
                "build",
                "-q",
                "--config",
                str(
                    write_config(tmp_path, extra=url_source(server.url_for("/a.json")) + FAST_FETCH)
                ),
            ]
        )
        == 0
    )
    assert capsys.readouterr().err == ""


def test_check_fetches_but_does_not_write_the_state(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/a.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    config = write_config(tmp_path, extra=url_source(server.url_for("/a.json")) + FAST_FETCH)
    assert main(["check", "-q", "--config", str(config)]) == 0
    with sqlite3.connect(tmp_path / ".aggregator" / "state.db") as db:
        assert db.execute("SELECT count(*) FROM entries WHERE namespace = 'http'").fetchone() == (
            0,
        )
    assert not (tmp_path / "out").exists()


def test_state_of_removed_sources_is_forgotten(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/a.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    server.expect_request("/b.json").respond_with_data(
        json.dumps([TWO]), content_type="application/json"
    )
    a, b = server.url_for("/a.json"), server.url_for("/b.json")
    run_build(write_config(tmp_path, extra=url_source(a) + url_source(b) + FAST_FETCH))
    run_build(write_config(tmp_path, extra=url_source(a) + FAST_FETCH))
    with sqlite3.connect(tmp_path / ".aggregator" / "state.db") as db:
        keys = sorted(
            key for (key,) in db.execute("SELECT key FROM entries WHERE namespace = 'http'")
        )
    assert keys == [f"meta {a}", f"records {a}"]


def test_state_from_another_version_is_a_cache_miss(server: HTTPServer, tmp_path: Path) -> None:
    served: list[str] = []
    server.expect_request("/a.json").respond_with_handler(
        conditional(json.dumps([ONE]).encode(), "application/json", served)
    )
    config = write_config(tmp_path, extra=url_source(server.url_for("/a.json")) + FAST_FETCH)
    run_build(config)
    with sqlite3.connect(tmp_path / ".aggregator" / "state.db") as db:
        rows = db.execute("SELECT key, value FROM entries WHERE namespace = 'http'").fetchall()
        db.executemany(
            "UPDATE entries SET value = ? WHERE namespace = 'http' AND key = ?",
            [(b"older version" + value, key) for key, value in rows],
        )
    report = run_build(config)
    assert served == ["200 /a.json", "200 /a.json"]  # no validators sent: nothing to reuse
    assert report.records == 1 and errors(report) == []


def test_a_corrupt_state_file_is_set_aside_with_a_warning(
    server: HTTPServer, tmp_path: Path, capsys
) -> None:
    server.expect_request("/a.json").respond_with_data(
        json.dumps([ONE]), content_type="application/json"
    )
    config = write_config(tmp_path, extra=url_source(server.url_for("/a.json")) + FAST_FETCH)
    (tmp_path / ".aggregator").mkdir()
    (tmp_path / ".aggregator" / "state.db").write_bytes(b"not a database at all" * 100)
    assert main(["build", "--config", str(config)]) == 0
    assert "state.db: warning: state file unusable" in capsys.readouterr().err
    assert (tmp_path / ".aggregator" / "state.db.corrupt").is_file()
    assert all_feed_links(tmp_path) == {ONE["webUrl"]}


def test_an_unusable_state_path_is_a_config_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    extra = FAST_FETCH + '\n[build]\nstate_path = "a-file/state.db"\n'
    config = write_config(tmp_path, extra=url_source("http://127.0.0.1:9/a.json") + extra)
    assert main(["build", "--config", str(config)]) == 2
    assert "build.state_path: expected a usable state file" in capsys.readouterr().err
