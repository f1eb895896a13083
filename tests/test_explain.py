"""explain: a feed's items with their scores, and what became of a record or a link."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.explain import Explainer

from .factories import CORPUS, fields, write_config, write_record

WIRE = {"name": "Wire", "domain": "wire.example"}


def at(hour: int) -> str:
    return f"2026-11-10T{hour:02d}:00:00Z"


def write_site(tmp_path: Path, extra: str = "") -> Path:
    """Seven stories on one day: five from one provider, one copy of the best of them
    from another outlet, a weak one; and a draft, an advert and a broken file."""
    records = tmp_path / "records"
    for n in range(1, 6):
        write_record(records, f"wire-{n}.md", fields(n, title=f"Wire story {n}", provider=WIRE,
                                                     quality=80 - n, heat=70,
                                                     publishedDateTime=at(n)))  # fmt: skip
    write_record(records, "other.md", fields(9, title="Other outlet story", quality=60,
                                             publishedDateTime=at(6)))  # fmt: skip
    write_record(records, "low.md", fields(10, title="A weak story", quality=1, heat=1,
                                           publishedDateTime=at(7)))  # fmt: skip
    write_record(records, "copy.md", fields(11, title="Wire story 1", quality=10,
                                            excerpt="What happened in story 1.",
                                            publishedDateTime=at(8)))  # fmt: skip
    write_record(records, "hidden.md", fields(12, title="Draft", published=False))
    write_record(records, "advert.md", fields(13, title="Sponsored: buy now"))
    (records / "broken.md").write_text("---\ntitle: Broken\nwebUrl: nope\n---\n", "utf-8")
    return write_config(
        tmp_path,
        extra='[[sources]]\npath = "records"\ndrop.title = ["sponsored"]\n'
        f"[feeds]\nmax_items = 5\n{extra}",
    )


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def test_a_feed_lists_every_item_with_the_parts_of_its_score(tmp_path: Path, capsys) -> None:
    config = write_site(tmp_path)
    code, out = run(capsys, "--config", str(config), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["feed"] == "all topics" and report["max_items"] == 5
    assert [item["rank"] for item in report["items"]] == [1, 2, 3, 4, 5]
    for item in report["items"]:
        s = item["score"]
        assert math.isclose(s["total"], s["worth"] + s["coverage"] + s["recency"] - s["penalty"])
    totals = [item["score"]["total"] for item in report["items"]]
    assert totals == sorted(totals, reverse=True)  # the order is the score less the penalty
    [first] = [i for i in report["items"] if i["title"] == "Wire story 1"]
    assert first["copies"][0]["url"].startswith("https://www.outlet11.example/")
    assert first["score"]["coverage"] == 0.5
    penalties = [i["score"]["penalty"] for i in report["items"] if i["title"].startswith("Wire")]
    assert penalties == [0.0, 0.5, 1.0, 1.5]
    assert report["next_out"] and report["next_out"][0]["rank"] is None
    code, text = run(capsys, "--config", str(config))
    assert "all topics: 5 items of 7 stories (max_items 5)" in text
    assert "also: Outlet 11:" in text


def test_a_topic_feed_by_name_or_slug(tmp_path: Path, capsys) -> None:
    config = write_site(tmp_path)
    _, by_name = run(capsys, "--config", str(config), "--topic", "AI", "--json")
    _, by_slug = run(capsys, "--config", str(config), "--topic", "ai", "--json")
    assert by_name == by_slug and json.loads(by_name)["slug"] == "ai"
    assert main(["explain", "--config", str(config), "--topic", "Gardening"]) == 2
    assert "no topic 'Gardening'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "fate", "says"),
    [
        ("broken.md", "rejected", "webUrl"),
        ("hidden.md", "unpublished", "published: false"),
        ("advert.md", "filtered", "sources[1]: drop title 'sponsored'"),
        ("wire-1.md", "in feeds", "all topics: ranked 1"),
        ("copy.md", "in feeds", "merged into the story"),
        ("low.md", "cut by max_items (5): ranked 7 by score", "cut by max_items"),
        ("wire-2.md", "pushed out by the diversity penalty", "diversity penalty"),
    ],
)
def test_what_became_of_a_record_file(
    tmp_path: Path, capsys, name: str, fate: str, says: str
) -> None:
    config = write_site(tmp_path)
    code, out = run(capsys, "--config", str(config), str(tmp_path / "records" / name), "--json")
    assert code == 0
    assert json.loads(out)["fate"] == fate
    _, text = run(capsys, "--config", str(config), str(tmp_path / "records" / name))
    assert says in text


def test_what_became_of_a_link(tmp_path: Path, capsys) -> None:
    config = write_site(tmp_path)
    copy_link = "https://www.outlet11.example/2026/11/story-11/?utm_source=x"
    _, out = run(capsys, "--config", str(config), copy_link, "--json")
    report = json.loads(out)
    assert report["fate"] == "in feeds" and report["merged_into"] == report["story"]["guid"]
    assert {p["feed"]: p["rank"] for p in report["feeds"]} == {"all topics": 1, "AI": 1}
    _, out = run(capsys, "--config", str(config), "https://nowhere.example/x")
    assert "not found" in out
    assert main(["explain", "--config", str(config), "no-such-file.md"]) == 2


def test_a_cap_and_a_feed_filter_are_named(tmp_path: Path, capsys) -> None:
    extra = "[ranking]\nmax_per_provider = 2\n[[filters]]\ntopics = []\nmin_quality = 78\n"
    config = write_site(tmp_path, extra)
    _, text = run(capsys, "--config", str(config), str(tmp_path / "records" / "wire-3.md"))
    assert "all topics: filtered by filters[1]: min_quality 78" in text
    assert "AI (topics/ai): cut by max_per_provider (2 from its provider)" in text


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_explain_answers_for_every_file_and_link_of_the_corpus(tmp_path: Path) -> None:
    folders = ("everyday-ai", "everyday-cc-powerapps", "everyday-powerapps-api")
    sources = "".join(f'\n[[sources]]\npath = "{CORPUS / name}"\n' for name in folders)
    config = load_config(write_config(tmp_path, extra=sources))
    explainer = Explainer(config)
    fates = {}
    files = (p for name in folders for p in (CORPUS / name).rglob("*.md") if p.name != "README.md")
    for path in sorted(files):
        fates[path] = explainer.record(str(path)).fate
    assert set(fates.values()) <= {"in feeds", "rejected", "unpublished"} | {
        f for f in fates.values() if f.startswith("cut by max_items")
    }
    assert list(fates.values()).count("unpublished") >= 64
    links = {r.url for r in explainer.collection.records}
    links |= {c.url for s in explainer.curated.clustering.stories for c in s.copies}
    for link in sorted(links):
        report = explainer.record(link)
        assert report.fate != "not found", link
        assert report.feeds, link
