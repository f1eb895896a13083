"""Webhooks: after a build, one POST per changed feed with its new items, to a real
HTTP server on 127.0.0.1; failed deliveries are retried on the next run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from pytest_httpserver import HTTPServer

from aggregator.cli import main

from .conftest import running_server
from .factories import fields, write_config, write_record


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    with running_server() as server:
        yield server


def site(tmp_path: Path, server: HTTPServer) -> Path:
    url = f"http://127.0.0.1:{server.port}/hook"
    return write_config(tmp_path, ["records"], f'[[webhooks]]\nurl = "{url}"\n')


def posts(server: HTTPServer) -> dict[str, list[str]]:
    """feed_url -> ids of the items POSTed for it, checking each body is a JSON Feed."""
    sent: dict[str, list[str]] = {}
    for request, _ in server.log:
        assert request.method == "POST" and request.path == "/hook"
        assert request.mimetype == "application/feed+json"
        body = json.loads(request.get_data())
        assert body["version"] == "https://jsonfeed.org/version/1.1"
        assert body["feed_url"] not in sent  # one POST per feed
        sent[body["feed_url"]] = [item["id"] for item in body["items"]]
    return sent


def test_each_changed_feed_is_posted_once_with_only_its_new_items(tmp_path, receiver) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    records = tmp_path / "records"
    write_record(records, "a.md", fields(1, topics=["AI"]))
    write_record(records, "b.md", fields(2, topics=["Robots"]))
    config = site(tmp_path, receiver)
    assert main(["build", "--config", str(config), "-q"]) == 0
    out = "https://feeds.example.org/news/"
    first = posts(receiver)
    assert set(first) == {out + "feed.json", out + "topics/ai/feed.json",
                          out + "topics/robots/feed.json"}  # fmt: skip
    assert len(first[out + "feed.json"]) == 2
    receiver.clear()
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    write_record(records, "c.md", fields(3, topics=["AI"]))
    assert main(["build", "--config", str(config), "-q"]) == 0
    new = "https://www.outlet3.example/2026/11/story-3"
    assert posts(receiver) == {out + "feed.json": [new], out + "topics/ai/feed.json": [new]}
    feed = feedparser.parse(tmp_path / "out" / "topics" / "ai" / "rss.xml")
    assert new in [entry.id for entry in feed.entries]  # the same items readers see
    receiver.clear()
    assert main(["build", "--config", str(config), "-q"]) == 0
    assert posts(receiver) == {}  # nothing changed: nothing sent


def test_a_failed_delivery_is_retried_on_the_next_run_and_never_fails_a_build(
    tmp_path, receiver, capsys
) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("down", status=503)
    write_record(tmp_path / "records", "a.md", fields(1))
    config = site(tmp_path, receiver)
    assert main(["build", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert "/hook: warning: webhook answered HTTP 503" in err
    assert "will be retried on the next run" in err
    assert len(receiver.log) == 1  # stopped at the first failure
    receiver.clear()
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    assert main(["build", "--config", str(config), "-q"]) == 0  # nothing changed
    out = "https://feeds.example.org/news/"
    assert sorted(posts(receiver)) == [out + "feed.json", out + "topics/ai/feed.json"]
    receiver.clear()
    assert main(["build", "--config", str(config), "-q"]) == 0
    assert receiver.log == []  # delivered once, then forgotten


def test_an_unreachable_webhook_is_a_warning(tmp_path, capsys) -> None:
    write_record(tmp_path / "records", "a.md", fields(1))
    config = write_config(tmp_path, ["records"], '[[webhooks]]\nurl = "http://127.0.0.1:9/"\n')
    assert main(["build", "--config", str(config)]) == 0
    assert "http://127.0.0.1:9/: warning: webhook unreachable" in capsys.readouterr().err


def test_a_webhook_needs_an_http_url(tmp_path, capsys) -> None:
    config = write_config(tmp_path, ["records"], '[[webhooks]]\nurl = "ftp://x"\n')
    (tmp_path / "records").mkdir()
    assert main(["build", "--config", str(config)]) == 2
    assert "webhooks[1].url" in capsys.readouterr().err
