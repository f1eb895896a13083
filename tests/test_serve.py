from __future__ import annotations

import gzip
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import Config, load_config
from aggregator.pipeline import build
from aggregator.serve import PreviewServer

from .conftest import preview
from .factories import write_config

Reply = tuple[int, dict[str, str], bytes]


def get(server: PreviewServer, path: str, method: str = "GET", **headers: str) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        names = {key.replace("_", "-"): value for key, value in headers.items()}
        connection.request(method, path, headers=names)
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


@pytest.fixture
def site(tmp_path: Path, records: Path) -> Config:
    config = load_config(write_config(tmp_path, [records]))
    build(config)
    return config


@pytest.fixture
def server(site: Config) -> Iterator[PreviewServer]:
    with preview(site.site.output_dir) as running:
        yield running


def edit_ai_story(records: Path) -> None:
    (story,) = records.glob("2026-11-21-startup-claims-its-agent-*.md")
    text = story.read_text(encoding="utf-8")
    story.write_text(text.replace("We Tried It", "We Tried It Twice"), encoding="utf-8")


def test_unchanged_feed_answers_304(server: PreviewServer, site: Config, records: Path) -> None:
    status, headers, body = get(server, "/topics/ai/rss.xml")
    assert status == 200
    assert body == (site.site.output_dir / "topics/ai/rss.xml").read_bytes()
    etag, modified = headers["etag"], headers["last-modified"]

    status, again, body = get(server, "/topics/ai/rss.xml", If_None_Match=etag)
    assert (status, body) == (304, b"")
    assert again["etag"] == etag

    assert build(site).written == 0, "an unchanged rebuild rewrites nothing"
    assert get(server, "/topics/ai/rss.xml", If_None_Match=etag)[0] == 304
    assert get(server, "/topics/ai/rss.xml", If_None_Match=f'"x", W/{etag}')[0] == 304
    assert get(server, "/topics/ai/rss.xml", If_Modified_Since=modified)[0] == 304
    long_ago = formatdate(0, usegmt=True)
    assert get(server, "/topics/ai/rss.xml", If_Modified_Since=long_ago)[0] == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    assert (
        get(server, "/topics/ai/rss.xml", If_None_Match='"old"', If_Modified_Since=modified)[0]
        == 200
    )

    edit_ai_story(records)
    build(site)
    status, changed, _ = get(server, "/topics/ai/rss.xml", If_None_Match=etag)
    assert status == 200
    assert changed["etag"] != etag


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/rss.xml", "application/rss+xml"),
        ("/topics/ai/atom.xml", "application/atom+xml"),
        ("/topics/ai/feed.json", "application/feed+json"),
        ("/index.opml", "text/x-opml"),
        ("/", "text/html"),
        ("/topics/space/index.html", "text/html"),
        ("/feed.xsl", "application/xml"),
    ],
)
def test_content_types(server: PreviewServer, path: str, expected: str) -> None:
    status, headers, _ = get(server, path)
    assert status == 200
    assert headers["content-type"].split(";")[0] == expected
    assert headers["cache-control"] == "no-cache"


def test_a_browser_gets_feeds_as_xml_so_the_stylesheet_runs(server: PreviewServer) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    status, headers, _ = get(server, "/topics/ai/rss.xml", Accept=browser)
    assert status == 200
    assert headers["content-type"] == "application/xml; charset=utf-8"
    assert "Accept" in headers["vary"]
    reader = "application/rss+xml, application/atom+xml;q=0.9, */*;q=0.1"
    assert get(server, "/topics/ai/atom.xml", Accept=reader)[1]["content-type"].startswith(
        "application/atom+xml"
    )


def test_gzip_when_the_client_accepts_it(server: PreviewServer, site: Config) -> None:
    original = (site.site.output_dir / "rss.xml").read_bytes()
    status, headers, body = get(server, "/rss.xml", Accept_Encoding="gzip, deflate")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in headers["vary"]
    assert int(headers["content-length"]) == len(body) < len(original)
    assert gzip.decompress(body) == original
    plain = get(server, "/rss.xml")
    assert "content-encoding" not in plain[1]
    assert plain[2] == original
    assert plain[1]["etag"] != headers["etag"], "each representation has its own tag"
    again = get(server, "/rss.xml", Accept_Encoding="gzip", If_None_Match=headers["etag"])
    assert again[0] == 304
    refused = get(server, "/rss.xml", Accept_Encoding="gzip;q=0, identity")
    assert "content-encoding" not in refused[1]


@pytest.mark.parametrize(
    "path",
    [
        "/../config.toml",
        "/%2e%2e/config.toml",
        "/topics/%2E%2E/%2e%2e/config.toml",
        "/..%2fconfig.toml",
        "/topics/ai/..%5c..%5c..%5cconfig.toml",
        "/.gitkeep",
        "/outside",
        "/outside/config.toml",
        "/missing.xml",
        "/index.html%00.xml",
    ],
)
def test_nothing_outside_the_output_folder(
    server: PreviewServer, site: Config, tmp_path: Path, path: str
) -> None:
    (site.site.output_dir / ".gitkeep").write_bytes(b"")
    (site.site.output_dir / "outside").symlink_to(tmp_path, target_is_directory=True)
    status, _, body = get(server, path)
    assert status == 404
    assert b"[site]" not in body


def test_folders_serve_their_index(server: PreviewServer, site: Config) -> None:
    status, headers, _ = get(server, "/topics/ai")
    assert (status, headers["location"]) == (301, "/topics/ai/")
    status, _, body = get(server, "/topics/ai/?utm_source=x")
    assert status == 200
    assert body == (site.site.output_dir / "topics/ai/index.html").read_bytes()
    status, headers, body = get(server, "/", method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == (site.site.output_dir / "index.html").stat().st_size


def test_serve_exits_2_when_the_port_is_taken(
    site: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--config", str(site.path), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_serve_command_rebuilds_on_an_interval(tmp_path: Path, records: Path) -> None:
    config = write_config(tmp_path, [records])
    command = [sys.executable, "-m", "aggregator", "serve", "-q", "--config", str(config),
               "--port", "0", "--build-every", "0.2"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving "), line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        server = _Address(port)
        status, headers, body = get(server, "/topics/ai/rss.xml")  # built at start
        assert status == 200
        edit_ai_story(records)
        deadline = time.monotonic() + 60  # a generous bound, not a timing assertion
        # The page is written after the feeds, so once it shows the edit the feed has it too.
        while b"We Tried It Twice" not in get(server, "/topics/ai/index.html")[2]:
            assert time.monotonic() < deadline, "the serve loop never rebuilt"
            time.sleep(0.1)
        status, _, body = get(server, "/topics/ai/rss.xml", If_None_Match=headers["etag"])
        assert status == 200
        assert b"We Tried It Twice" in body
    finally:
        process.terminate()
        process.wait(timeout=30)


class _Address:
    """Enough of a server for `get`: the port of the subprocess."""

    def __init__(self, port: int) -> None:
        self.server_address = ("127.0.0.1", port)


def test_each_representation_has_its_own_etag(server: PreviewServer) -> None:
    """rss.xml sent to a reader (application/rss+xml) and to a browser (application/xml,
    so the stylesheet runs) are two representations: a cache must not mix them up."""
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    tags = {}
    for accept in ("application/rss+xml", browser):
        for encoding in ("identity", "gzip"):
            status, headers, _ = get(server, "/rss.xml", Accept=accept, Accept_Encoding=encoding)
            assert status == 200
            tags[accept, encoding] = headers["etag"]
            assert get(server, "/rss.xml", Accept=accept, Accept_Encoding=encoding,
                       If_None_Match=headers["etag"])[0] == 304  # fmt: skip
    assert len(set(tags.values())) == 4, tags
    reader_tag = tags["application/rss+xml", "identity"]
    status, headers, _ = get(server, "/rss.xml", Accept=browser, If_None_Match=reader_tag)
    assert status == 200 and headers["content-type"].startswith("application/xml")
    # Files with one representation keep the plain content hash.
    stylesheet = get(server, "/feed.xsl")[1]["etag"]
    assert get(server, "/feed.xsl", Accept=browser)[1]["etag"] == stylesheet


def read_event(stream: http.client.HTTPResponse) -> list[str]:
    """The lines of the next server-sent event (comments skipped)."""
    lines: list[str] = []
    while True:
        line = stream.readline().decode()
        assert line, "the stream ended"
        if line == "\n":
            if lines:
                return lines
            continue
        if not line.startswith(":"):
            lines.append(line.rstrip("\n"))


Stream = tuple[http.client.HTTPConnection, http.client.HTTPResponse]


def open_stream(port: int, since: int) -> Stream:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", f"/.live-reload?since={since}")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/event-stream")
    assert read_event(response) == ["retry: 1000"]
    return connection, response


def test_live_reload_pages_listen_for_builds(site: Config) -> None:
    output = site.site.output_dir
    with preview(output, live_reload=True) as server:
        _, _, page = get(server, "/topics/ai/")
        on_disk = (output / "topics/ai/index.html").read_bytes()
        script = page[page.rfind(b"<script>") : page.rfind(b"</body>")]
        assert script.endswith(b"</script>\n") and page.replace(script, b"") == on_disk
        assert b'new EventSource("/.live-reload?since=0")' in page
        assert get(server, "/topics/ai/rss.xml")[2] == (output / "topics/ai/rss.xml").read_bytes()
        connection, stream = open_stream(server.server_address[1], since=0)
        try:
            server.changed()
            assert read_event(stream) == ["event: reload", "data: 1"]
        finally:
            connection.close()
        status, headers, page = get(server, "/", If_Modified_Since=formatdate(usegmt=True))
        assert status == 200 and b"since=1" in page  # the file is older; the page is not
        assert "last-modified" not in headers
        assert get(server, "/", If_None_Match=headers["etag"])[0] == 304
        connection, stream = open_stream(server.server_address[1], since=0)  # a page from before
        try:
            assert read_event(stream) == ["event: reload", "data: 1"]
        finally:
            connection.close()
    with preview(output) as plain:
        assert get(plain, "/.live-reload?since=0")[0] == 404
        assert get(plain, "/topics/ai/")[2] == on_disk


def test_serve_live_reload_reloads_after_a_rebuild(tmp_path: Path, records: Path) -> None:
    config = write_config(tmp_path, [records])
    command = [sys.executable, "-m", "aggregator", "serve", "-q", "--config", str(config),
               "--port", "0", "--live-reload", "--build-every", "0.2"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving ") and "with live reload" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        page = get(_Address(port), "/topics/ai/")[2]
        since = int(page.split(b"since=")[1].split(b'"')[0])
        connection, stream = open_stream(port, since)
        try:
            edit_ai_story(records)
            event = read_event(stream)  # the read times out (60 s) if no reload comes
            assert event == ["event: reload", f"data: {since + 1}"]
        finally:
            connection.close()
        assert b"We Tried It Twice" in get(_Address(port), "/topics/ai/")[2]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_live_reload_reports_only_the_builds_that_changed_something(
    tmp_path: Path, records: Path
) -> None:
    config = write_config(tmp_path, [records])
    command = [sys.executable, "-m", "aggregator", "serve", "--config", str(config),
               "--port", "0", "--live-reload"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert " stories in " in first, first  # the build at start
        line = process.stdout.readline()
        assert line.startswith("serving "), line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        time.sleep(4.5)  # two builds (every 2 s) that change nothing
        (story,) = records.glob("2026-11-21-startup-claims-its-agent-*.md")
        edited = story.read_text(encoding="utf-8").replace("We Tried It", "We Tried It Twice")
        temporary = story.with_name(".edit.tmp")
        temporary.write_text(edited, encoding="utf-8")
        temporary.replace(story)  # at once: no build reads half a file
        deadline = time.monotonic() + 60
        while b"We Tried It Twice" not in get(_Address(port), "/topics/ai/index.html")[2]:
            assert time.monotonic() < deadline, "the serve loop never rebuilt"
            time.sleep(0.1)
        time.sleep(2.5)  # and one more
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    summaries = [line for line in rest.splitlines() if " stories in " in line]
    assert len(summaries) == 1, rest  # the build that wrote the edit; the others are quiet
    assert " wrote 0 of " not in summaries[0]
