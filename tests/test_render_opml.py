from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from aggregator.build import build

from .conftest import CORPUS
from .support_site import BASE_URL, EXAMPLES, build_site, public_url, rss_files


def outlines(output: Path) -> list[etree._Element]:
    document = etree.parse(str(output / "index.opml"), etree.XMLParser(resolve_entities=False))
    root = document.getroot()
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    assert root.findtext("head/title")
    return root.findall("body/outline")


@pytest.mark.parametrize("records", [EXAMPLES, CORPUS], ids=["examples", "corpus"])
def test_opml_lists_every_feed_on_disk(tmp_path: Path, records: Path) -> None:
    if not records.is_dir():
        pytest.skip(f"{records} is absent")
    config, _ = build_site(tmp_path, records)
    output = config.site.output_dir
    items = outlines(output)
    on_disk = {public_url(output, path) for path in rss_files(output)}
    listed = [item.get("xmlUrl") for item in items]
    assert len(listed) == len(set(listed)), "a feed is listed twice"
    assert set(listed) == on_disk
    assert listed[0] == BASE_URL + "rss.xml", "the all-topics feed comes first"
    assert len(on_disk) > 2
    for item in items:
        assert item.get("type") == "rss"
        assert item.get("text") and item.get("title") == item.get("text")
        page = item.get("htmlUrl")
        assert page.startswith(BASE_URL)
        assert (output / page.removeprefix(BASE_URL) / "index.html").is_file()


def test_opml_keeps_names_that_need_escaping(tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    (records / "one.md").write_text(
        "---\n"
        'title: "Chips & <Cheese>"\n'
        "webUrl: https://example.com/a\n"
        "publishedDateTime: 2026-11-01T10:00:00Z\n"
        'topics: ["R&D \\"labs\\" <2026>", "機械学習"]\n'
        "---\n",
        encoding="utf-8",
    )
    config, _ = build_site(tmp_path, records)
    titles = {item.get("title") for item in outlines(config.site.output_dir)}
    assert titles == {"Test News", 'Test News: R&D "labs" <2026>', "Test News: 機械学習"}


def test_opml_is_byte_identical_and_not_rewritten(tmp_path: Path) -> None:
    config, _ = build_site(tmp_path)
    opml = config.site.output_dir / "index.opml"
    first = opml.read_bytes()
    stamp = opml.stat().st_mtime_ns
    report = build(config)
    assert report.written == 0
    assert opml.read_bytes() == first
    assert opml.stat().st_mtime_ns == stamp
    other = build(config, tmp_path / "elsewhere")
    assert other.written == other.feeds
    assert (tmp_path / "elsewhere" / "index.opml").read_bytes() == first
