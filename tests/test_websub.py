from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from pytest_httpserver import HTTPServer

from aggregator.cli import main
from aggregator.state.sqlite import SqliteStore

from .conftest import running_server
from .factories import BASE_URL, build_site, write_config

ATOM = "{http://www.w3.org/2005/Atom}"
FEED_NAMES = ("rss.xml", "atom.xml", "feed.json")


@pytest.fixture
def hub() -> Iterator[HTTPServer]:
    """A WebSub hub stand-in on 127.0.0.1 that records what it is sent."""
    with running_server() as server:
        yield server


def hub_url(server: HTTPServer) -> str:
    return f"http://127.0.0.1:{server.port}/hub"


def announced(server: HTTPServer) -> list[str]:
    urls = []
    for request, _ in server.log:
        assert request.method == "POST"
        assert request.mimetype == "application/x-www-form-urlencoded"
        assert request.form.getlist("hub.mode") == ["publish"]
        assert len(request.form.getlist("hub.url")) == 1
        urls.append(request.form["hub.url"])
    return urls


def feed_urls(output: Path) -> set[str]:
    return {
        BASE_URL + path.relative_to(output).as_posix()
        for name in FEED_NAMES
        for path in output.rglob(name)
    }


def snapshot(output: Path) -> dict[str, bytes]:
    return {
        BASE_URL + path.relative_to(output).as_posix(): path.read_bytes()
        for name in FEED_NAMES
        for path in output.rglob(name)
    }


def pending(config_dir: Path) -> set[str]:
    with SqliteStore.open(config_dir / ".aggregator" / "state.db") as store:
        return set(store.items("websub"))


def test_feeds_carry_hub_and_self_links(tmp_path: Path) -> None:
    hub_address = "https://hub.example.net/"
    config, _ = build_site(tmp_path, site=f'websub_hub = "{hub_address}"')
    output = config.site.output_dir
    for rss_path in output.rglob("rss.xml"):
        channel = etree.parse(str(rss_path)).getroot().find("channel")
        links = {link.get("rel"): link.get("href") for link in channel.findall(f"{ATOM}link")}
        assert links == {"self": BASE_URL + rss_path.relative_to(output).as_posix(),
                         "hub": hub_address}  # fmt: skip
        atom_path = rss_path.with_name("atom.xml")
        feed = etree.parse(str(atom_path)).getroot()
        rels = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
        assert rels["hub"] == hub_address
        assert rels["self"] == BASE_URL + atom_path.relative_to(output).as_posix()
        for path in (rss_path, atom_path):
            parsed = feedparser.parse(path.read_bytes())
            assert not parsed.bozo, parsed.get("bozo_exception")
            assert hub_address in [link.href for link in parsed.feed.links]
    plain, _ = build_site(tmp_path / "plain")
    assert b'rel="hub"' not in (plain.site.output_dir / "rss.xml").read_bytes()


def test_only_changed_feeds_are_announced(tmp_path: Path, hub: HTTPServer, records: Path) -> None:
    hub.expect_request("/hub", method="POST").respond_with_data("", status=204)
    config = write_config(tmp_path, [records], site=f'websub_hub = "{hub_url(hub)}"')
    output = tmp_path / "out"

    assert main(["build", "-q", "--config", str(config)]) == 0
    first = announced(hub)
    assert sorted(first) == sorted(feed_urls(output)), "a first build announces every feed"
    assert len(first) == 3 * len(list(output.rglob("rss.xml")))

    hub.clear_log()
    assert main(["build", "-q", "--config", str(config)]) == 0
    assert announced(hub) == [], "nothing changed, nothing announced"

    before = snapshot(output)
    (story,) = records.glob("2026-11-24-photonic-quantum-startup-*.md")
    story.write_text(
        story.read_text(encoding="utf-8").replace("Raises Series B", "Raises a Series B"),
        encoding="utf-8",
    )
    assert main(["build", "-q", "--config", str(config)]) == 0
    after = snapshot(output)
    changed = {url for url, data in after.items() if before.get(url) != data}
    assert changed, "the edit changed some feeds"
    assert len(changed) < len(after), "but not all of them"
    assert sorted(announced(hub)) == sorted(changed)
    assert pending(tmp_path) == set()


def test_a_failing_hub_is_reported_and_retried_next_run(
    tmp_path: Path, hub: HTTPServer, records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.expect_request("/hub", method="POST").respond_with_data("busy", status=503)
    config = write_config(tmp_path, [records], site=f'websub_hub = "{hub_url(hub)}"')
    output = tmp_path / "out"

    assert main(["build", "--config", str(config)]) == 0, "a hub never fails the build"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"{hub_url(hub)}: warning: WebSub hub answered HTTP 503")
    assert len(hub.log) == 1, "stops at the first failure instead of hammering the hub"
    assert pending(tmp_path) == feed_urls(output)

    hub.clear()
    hub.expect_request("/hub", method="POST").respond_with_data("", status=202)
    assert main(["build", "--config", str(config)]) == 0
    assert capsys.readouterr().err == ""
    assert sorted(announced(hub)) == sorted(feed_urls(output)), "nothing changed, all retried"
    assert pending(tmp_path) == set()

    hub.clear_log()
    assert main(["build", "--config", str(config)]) == 0
    assert announced(hub) == []


def test_an_unreachable_hub_is_one_warning(
    tmp_path: Path, records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port on 127.0.0.1 where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, [records], site=f'websub_hub = "http://127.0.0.1:{port}/"')
    assert main(["build", "--config", str(config)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "warning: WebSub hub unreachable" in err[0]
    assert "will be announced again on the next run" in err[0]
    assert pending(tmp_path) == feed_urls(tmp_path / "out")
