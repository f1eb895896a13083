"""Output to object storage: builds upload the output folder to a real S3-compatible
server on 127.0.0.1 (moto in server mode) through the real s3fs client; the bucket is
read back with boto3, and every request the server answered is counted from its log."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.output.storage import NAMESPACE
from aggregator.state import open_store

from .conftest import S3Server
from .factories import fields, s3_site, tree_bytes, write_config, write_record

BUCKET = "news"
PREFIX = "site/"
TYPES = {
    "rss.xml": "application/rss+xml; charset=utf-8",
    "atom.xml": "application/atom+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
    "index.opml": "text/x-opml; charset=utf-8",
    "feed.xsl": "application/xml; charset=utf-8",
}


@pytest.fixture
def bucket(s3: S3Server) -> S3Server:
    s3.client().create_bucket(Bucket=BUCKET)
    s3.log.clear()
    return s3


def site(tmp_path: Path, records: Path, endpoint: str, extra: str = "") -> Path:
    return write_config(tmp_path, [records], site=s3_site(endpoint, extra=extra))


def build(config: Path, *options: str) -> int:
    return main(["build", "-q", "--config", str(config), *options])


def changed_list(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def cdn_paths(relatives: set[str]) -> list[str]:
    """What --changed-paths lists for these files (base URL path /news/)."""
    paths = []
    for relative in relatives:
        paths.append(f"/news/{relative}")
        if relative.endswith("index.html"):
            paths.append(f"/news/{relative.removesuffix('index.html')}")
    return sorted(paths)


def changed_files(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    return {name for name in {*before, *after} if before.get(name) != after.get(name)}


def test_a_build_uploads_every_file_with_its_headers(
    tmp_path: Path, records: Path, bucket: S3Server
) -> None:
    config = site(tmp_path, records, bucket.endpoint)
    listed = tmp_path / "changed.txt"
    assert build(config, "--changed-paths", str(listed)) == 0
    local = tree_bytes(tmp_path / "out")
    objects = bucket.objects(BUCKET)
    assert set(objects) == {PREFIX + name for name in local}, "the output files and nothing else"
    for name, data in local.items():
        stored = objects[PREFIX + name]
        assert stored["data"] == data, name
        kind = TYPES[name.rsplit("/", 1)[-1]]
        assert stored["type"] == kind, name
        assert stored["cache"] == "max-age=300", name
    assert len(bucket.requests("PUT")) == len(local), "one PUT per file"
    assert sorted(changed_list(listed)) == cdn_paths(set(local))
    assert "/news/topics/ai/" in changed_list(listed), "a page's folder URL is listed too"


def test_feeds_go_up_before_the_pages_and_the_opml_list(
    tmp_path: Path, records: Path, bucket: S3Server
) -> None:
    assert build(site(tmp_path, records, bucket.endpoint)) == 0
    order = [path.removeprefix(f"{BUCKET}/{PREFIX}") for path in bucket.requests("PUT")]

    def position(test) -> list[int]:
        return [index for index, name in enumerate(order) if test(name)]

    stylesheet = position(lambda name: name == "feed.xsl")
    feeds = position(lambda name: name.rsplit("/", 1)[-1] in ("rss.xml", "atom.xml", "feed.json"))
    topic_pages = position(lambda name: name.endswith("/index.html"))
    front, opml = order.index("index.html"), order.index("index.opml")
    assert stylesheet == [0]
    assert max(feeds) < min(topic_pages)
    assert max(topic_pages) < front < opml == len(order) - 1


def test_rebuilds_upload_only_the_objects_whose_bytes_changed(
    tmp_path: Path, records: Path, bucket: S3Server
) -> None:
    config = site(tmp_path, records, bucket.endpoint)
    listed = tmp_path / "changed.txt"
    output = tmp_path / "out"
    assert build(config) == 0
    first = bucket.objects(BUCKET)

    bucket.log.clear()
    assert build(config, "--changed-paths", str(listed)) == 0
    assert bucket.requests("PUT") == [], "nothing changed: 0 objects uploaded"
    assert changed_list(listed) == []

    before = tree_bytes(output)
    (story,) = records.glob("2026-11-24-photonic-quantum-startup-*.md")
    story.write_text(
        story.read_text(encoding="utf-8").replace("Raises Series B", "Raises a Series B"),
        encoding="utf-8",
    )
    bucket.log.clear()
    assert build(config, "--changed-paths", str(listed)) == 0
    changed = changed_files(before, tree_bytes(output))
    assert 0 < len(changed) < len(before), "the edit changed some files, not all"
    uploaded = [path.removeprefix(f"{BUCKET}/{PREFIX}") for path in bucket.requests("PUT")]
    assert sorted(uploaded) == sorted(changed), "exactly the changed objects, each once"
    assert sorted(changed_list(listed)) == cdn_paths(changed)
    after = bucket.objects(BUCKET)
    for key, stored in after.items():
        if key.removeprefix(PREFIX) not in changed:
            kept = (first[key]["etag"], first[key]["modified"])
            assert (stored["etag"], stored["modified"]) == kept, key
        assert stored["data"] == (output / key.removeprefix(PREFIX)).read_bytes()


def test_a_removed_topic_is_deleted_and_other_objects_are_left_alone(
    tmp_path: Path, records: Path, bucket: S3Server
) -> None:
    extra = write_record(records, "gardening.md", fields(7, topics=["Gardening"]))
    config = site(tmp_path, records, bucket.endpoint)
    assert build(config) == 0
    client = bucket.client()
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}robots.txt", Body=b"User-agent: *\n")
    client.put_object(Bucket=BUCKET, Key="elsewhere/rss.xml", Body=b"<rss/>")
    # One of ours that someone replaced since: no longer what this tool put there.
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}topics/gardening/feed.json", Body=b"{}")
    gardening = {key for key in bucket.objects(BUCKET) if "/gardening/" in key}
    assert len(gardening) == 4

    extra.unlink()
    listed = tmp_path / "changed.txt"
    bucket.log.clear()
    assert build(config, "--changed-paths", str(listed)) == 0
    objects = bucket.objects(BUCKET)
    assert not (tmp_path / "out" / "topics" / "gardening").exists()
    assert {key for key in objects if "/gardening/" in key} == {
        f"{PREFIX}topics/gardening/feed.json"
    }, "the topic's objects are deleted, but not one someone else wrote"
    assert objects[f"{PREFIX}robots.txt"]["data"] == b"User-agent: *\n"
    assert objects["elsewhere/rss.xml"]["data"] == b"<rss/>"
    deleted = bucket.requests("DELETE")
    assert sorted(deleted) == sorted(f"{BUCKET}/{key}" for key in gardening
                                     if not key.endswith("feed.json"))  # fmt: skip
    assert deleted[0].endswith("index.html"), "the page goes before the feeds it links to"
    assert "/news/topics/gardening/rss.xml" in changed_list(listed)

    bucket.log.clear()
    assert build(config) == 0
    assert bucket.requests("DELETE") == [] and bucket.requests("PUT") == []


def closed_port() -> int:
    with socket.socket() as probe:  # a port on 127.0.0.1 where nothing listens
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_endpoint_is_one_line_and_the_next_build_catches_up(
    tmp_path: Path, records: Path, bucket: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    good = site(tmp_path, records, bucket.endpoint)
    output = tmp_path / "out"
    assert build(good) == 0
    before = tree_bytes(output)
    (story,) = records.glob("2026-11-24-photonic-quantum-startup-*.md")
    story.write_text(story.read_text(encoding="utf-8").replace("Series B", "Series C"),
                     encoding="utf-8")  # fmt: skip
    capsys.readouterr()

    dead = f"http://127.0.0.1:{closed_port()}"
    good.write_text(good.read_text(encoding="utf-8").replace(bucket.endpoint, dead),
                    encoding="utf-8")  # fmt: skip
    started = time.monotonic()
    assert build(good) == 5, "exit code as for a write error"
    assert time.monotonic() - started < 30, "bounded time"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"aggregator: upload failed: s3://{BUCKET}/site/")
    assert "Could not connect to the endpoint URL" in err[0]
    assert "the next build uploads what the bucket did not confirm" in err[0]
    changed = changed_files(before, tree_bytes(output))
    assert changed, "the local folder is complete all the same"

    good.write_text(good.read_text(encoding="utf-8").replace(dead, bucket.endpoint),
                    encoding="utf-8")  # fmt: skip
    bucket.log.clear()
    assert build(good) == 0
    assert capsys.readouterr().err == ""
    uploaded = [path.removeprefix(f"{BUCKET}/{PREFIX}") for path in bucket.requests("PUT")]
    assert sorted(uploaded) == sorted(changed), "what was missed, and nothing else"
    objects = bucket.objects(BUCKET)
    assert {key.removeprefix(PREFIX): o["data"] for key, o in objects.items()} == tree_bytes(output)


def test_a_first_upload_to_an_unreachable_endpoint_is_retried_in_full(
    tmp_path: Path, records: Path, bucket: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    config = site(tmp_path, records, dead)
    assert build(config) == 5
    assert len(capsys.readouterr().err.splitlines()) == 1
    with open_store(load_config(config)) as store:
        assert store.items(NAMESPACE) == {}, "no digest without a confirmed put"
    config.write_text(config.read_text(encoding="utf-8").replace(dead, bucket.endpoint),
                      encoding="utf-8")  # fmt: skip
    assert build(config) == 0
    local = tree_bytes(tmp_path / "out")
    assert len(bucket.requests("PUT")) == len(local)
    assert {key.removeprefix(PREFIX) for key in bucket.objects(BUCKET)} == set(local)


def test_a_new_cache_control_uploads_again_and_full_uploads_everything(
    tmp_path: Path, records: Path, bucket: S3Server
) -> None:
    config = site(tmp_path, records, bucket.endpoint)
    assert build(config) == 0
    files = len(tree_bytes(tmp_path / "out"))
    config = site(tmp_path, records, bucket.endpoint, 'cache_control = "public, max-age=60"')
    bucket.log.clear()
    assert build(config) == 0
    assert len(bucket.requests("PUT")) == files
    assert {o["cache"] for o in bucket.objects(BUCKET).values()} == {"public, max-age=60"}
    bucket.log.clear()
    assert build(config, "--full") == 0
    assert len(bucket.requests("PUT")) == files, "--full ignores what the bucket was given"


def test_a_missing_bucket_is_one_clear_line(
    tmp_path: Path, records: Path, s3: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build(site(tmp_path, records, s3.endpoint)) == 5
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"aggregator: upload failed: s3://{BUCKET}/site/feed.xsl: ")
    assert "bucket does not exist" in line


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ('{ endpoint = "http://127.0.0.1:9" }', "output_options.endpoint: not an s3fs setting; "
                                                "did you mean 'endpoint_url'?"),
        ('{ config_kwargs = 3 }', "output_options.config_kwargs: expected a table"),
    ],
)  # fmt: skip
def test_options_s3fs_does_not_take_are_config_errors(
    tmp_path: Path, records: Path, capsys: pytest.CaptureFixture[str], options: str, expected: str
) -> None:
    config = write_config(tmp_path, [records],
                          site=f'output_url = "s3://news"\noutput_options = {options}')
    assert build(config) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"aggregator: config error: {config}:6: site.") and expected in line
    assert not (tmp_path / "out").exists(), "nothing written"
