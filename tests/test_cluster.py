"""cluster: copies of one story under other links become one item; templates stay apart."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import yaml

from aggregator.cluster import cluster
from aggregator.config import ClusteringConfig, load_config
from aggregator.pipeline import build

from .factories import CORPUS, fields, make_record, tree_bytes, write_config, write_record

CONFIG = ClusteringConfig()
FRONT = re.compile(r"\A\ufeff?---\r?\n(.*?)^---\r?$", re.DOTALL | re.MULTILINE)


DAY0 = datetime(2026, 11, 10, tzinfo=UTC)


def at(hour: float) -> str:
    """`hour` hours into 10 November 2026."""
    return (DAY0 + timedelta(hours=hour)).isoformat()


def copy(n: int, title: str, hour: float, outlet: str, **extra) -> object:
    """Record `n`: `title` filed by `outlet` at `hour` on 10 November, under its own link."""
    provider = {"name": outlet, "domain": f"{outlet.lower().replace(' ', '')}.example"}
    return make_record(n, title=title, publishedDateTime=at(hour), provider=provider, **extra)


def groups(records) -> list[set[str]]:
    """The titles of each story's records, for stories of more than one record."""
    clustering = cluster(records, CONFIG)
    return sorted(({r.title for r in members} for members in clustering.members.values()),
                  key=sorted)  # fmt: skip


def apart(a: str, b: str, hours: float = 2) -> bool:
    records = [copy(1, a, 8, "First Outlet"), copy(2, b, 8 + hours, "Second Outlet")]
    return len(cluster(records, CONFIG).stories) == 2


# --- the same story -------------------------------------------------------------------------


RETOLD = (
    "Microsoft Power Apps misconfiguration exposes 38 million records",
    "38 million records exposed by Microsoft Power Apps misconfiguration",
    "Power Apps misconfiguration exposed 38 million records",
)


def test_one_story_retold_by_three_outlets_on_one_day_is_one_item() -> None:
    records = [
        copy(1, RETOLD[0], 9, "ZDNet", quality=70),
        copy(2, RETOLD[1], 11, "TechRepublic", quality=90, heat=80),
        copy(3, RETOLD[2], 15, "ITPro", quality=60),
    ]
    clustering = cluster(records, CONFIG)
    [story] = clustering.stories
    assert clustering.duplicates == 2
    # identity: the first copy's link and dates; text: the best-rated copy's
    assert story.guid == records[0].guid and story.published == records[0].published
    assert story.updated == records[0].updated
    assert (story.title, story.url) == (records[1].title, records[1].url)
    assert [(c.provider, c.url) for c in story.copies] == [
        ("ZDNet", records[0].url),
        ("ITPro", records[2].url),
    ]


def test_syndicated_copies_regional_editions_and_press_releases_merge() -> None:
    title = "VentureBeat: startup raises $40 million for its language model library"
    syndicated = [copy(1, title, 8, "VentureBeat"), copy(2, title, 9, "Business Insider")]
    regional = [
        make_record(3, title="Best phones of the year, tested", publishedDateTime=at(6),
                    webUrl="https://www.techradar.com/news/best-phones",
                    provider={"name": "TechRadar", "domain": "techradar.com"}),
        make_record(4, title="Best phones of the year, tested", publishedDateTime=at(7),
                    webUrl="https://www.techradar.com/sg/news/best-phones",
                    provider={"name": "TechRadar", "domain": "techradar.com"}),
    ]  # fmt: skip
    release = "Acme Robotics Announces Series B Funding to Scale Warehouse Automation"
    press = [copy(5, release, 12, "PR Newswire"), copy(6, release, 14, "EE Journal")]
    assert len(cluster([*syndicated, *regional, *press], CONFIG).stories) == 3


def test_copies_must_lie_within_the_window_of_the_first() -> None:
    title = "Grid battery pilot passes its first winter test"
    near = [copy(1, title, 0, "A Outlet"), copy(2, title, 23, "B Outlet")]
    assert len(cluster(near, CONFIG).stories) == 1
    wide = ClusteringConfig(window_hours=12)
    assert len(cluster(near, wide).stories) == 2
    later = make_record(3, title=title, publishedDateTime="2026-11-14T08:00:00Z",
                        provider={"name": "C Outlet"})  # fmt: skip
    assert len(cluster([*near, later], CONFIG).stories) == 2  # four days on: a new story


def test_clustering_can_be_switched_off() -> None:
    records = [copy(1, RETOLD[0], 9, "ZDNet"), copy(2, RETOLD[0], 10, "ITPro")]
    assert len(cluster(records, ClusteringConfig(enabled=False)).stories) == 2


def test_short_titles_are_compared_with_their_excerpts() -> None:
    same = "The agency said the satellite would re-enter over the Pacific on Tuesday night."
    other = "Shares of the chipmaker fell after it cut its forecast for the second time."
    records = [
        copy(1, "Satellite falls", 8, "A Outlet", excerpt=same),
        copy(2, "Satellite falls", 9, "B Outlet", excerpt=same),
        copy(3, "Satellite falls", 10, "C Outlet", excerpt=other),
    ]
    assert [len(g) for g in cluster(records, CONFIG).members.values()] == [2]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"title": "Satellite falls", "excerpt": "<p>The <b>agency</b> said it would re-enter.</p>"},
        {"provider": {"name": "Wire Ünïon"}},
        {"provider": None},
    ],
    ids=["plain", "short-title", "provider-name", "no-provider"],
)
def test_a_brief_from_a_records_stored_values_is_the_records_brief(overrides: dict) -> None:
    # An incremental build clusters the stories around a change from the parse cache's
    # plain values, without making their records: what it reads must be the same.
    from aggregator.cluster import brief_from_values, brief_of
    from aggregator.model import DocumentResult
    from aggregator.state.record_codec import decode_record_values, encode_result

    record = make_record(4, **overrides)
    stored = encode_result(DocumentResult((record,)))
    assert [brief_from_values(v) for v in decode_record_values(stored)] == [brief_of(record)]


# --- templates stay apart -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Power Apps 2019 release wave 2 overview", "Power Apps 2020 release wave 1 overview"),
        ("Power Apps January 2024 update", "Power Apps February 2024 update"),
        ("Canvas App Troubleshooting Part 1", "Canvas App Troubleshooting Part 2"),
        ("Meta cuts satellite network over Africa", "Meta expands satellite network over Africa"),
        ("Microsoft launches a low-code app builder", "Google launches a low-code app builder"),
        ("Startup raises $40 million for robots", "Startup raises $50 million for robots"),
    ],
)
def test_templated_titles_that_differ_in_a_number_or_a_name_stay_apart(a: str, b: str) -> None:
    assert apart(a, b)


def test_words_added_or_inflected_are_no_template() -> None:
    assert not apart(RETOLD[0], "Report: " + RETOLD[0])
    assert not apart(RETOLD[0], RETOLD[2])


def test_a_copy_of_one_story_does_not_chain_in_another() -> None:
    """B matches A and C matches B, but C is A's template filled otherwise."""
    a = copy(1, "Samsung ships cloud platform for hospitals in Kenya", 1, "A Outlet")
    b = copy(2, "Update: Samsung cloud platform for hospitals in Kenya", 2, "B Outlet")
    c = copy(3, "Samsung retires cloud platform for hospitals in Kenya", 3, "C Outlet")
    assert groups([a, b, c]) == [{a.title, b.title}]


def test_one_provider_filing_one_title_days_apart_is_a_series() -> None:
    title = "Daily briefing: what to know about robots today"
    records = [copy(1, title, 0, "Desk"), copy(2, title, 23.5, "Desk")]
    records[1] = make_record(2, title=title, publishedDateTime="2026-11-11T23:00:00Z",
                             provider={"name": "Desk", "domain": "desk.example"})  # fmt: skip
    assert len(cluster(records, CONFIG).stories) == 2


def corpus_titles(*names: str) -> list[str]:
    titles = []
    for name in names:
        [path] = CORPUS.rglob(name)
        titles.append(yaml.safe_load(FRONT.match(path.read_text("utf-8")).group(1))["title"])
    return titles


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_templated_pairs_of_the_corpus_stay_apart_and_its_copies_merge() -> None:
    part_1, part_2 = corpus_titles(
        "2022-06-30-secure-amazon-sagemaker-studio-presigned-urls-part-1-*.md",
        "2022-06-30-secure-amazon-sagemaker-studio-presigned-urls-part-2-*.md",
    )
    assert apart(part_1, part_2, hours=0.01)  # the same provider, 25 seconds apart
    market_a, market_b = corpus_titles(
        "2021-03-03-artificial-intelligence-and-cognitive-computing-market-*.md",
        "2021-03-09-healthcare-artificial-intelligence-market-next-big-thing-*.md",
    )
    assert apart(market_a, market_b)  # six days apart in the corpus; here two hours
    api = CORPUS / "everyday-powerapps-api" / "api" / "news"
    titles = [item["title"] for page in api.rglob("*.json")
              for item in json.loads(page.read_text("utf-8"))["value"]]  # fmt: skip
    [cli] = {title for title in titles if title == "Power Platform CLI January update"}
    assert apart(cli, cli.replace("January", "February"))
    synopsys, synopsys_copy = corpus_titles(
        "2021-03-09-synopsys-arc-ev-processor-*.md", "2021-03-10-synopsys-arc-ev-processor-*.md"
    )
    assert not apart(synopsys, synopsys_copy)
    aiict, aiict_retold = corpus_titles(
        "2021-03-09-aiict-introduces-*.md", "2021-03-12-aiict-with-aws-*.md"
    )
    assert not apart(aiict, aiict_retold, hours=48)


# --- determinism and identity ---------------------------------------------------------------


def test_clusters_do_not_depend_on_input_order() -> None:
    records = [
        copy(1, RETOLD[0], 9, "ZDNet"), copy(2, RETOLD[1], 11, "TechRepublic"),
        copy(3, RETOLD[2], 15, "ITPro"), copy(4, "Something else entirely", 10, "Other"),
        copy(5, "Power Apps January 2024 update", 10, "Microsoft"),
        copy(6, "Power Apps February 2024 update", 12, "Microsoft"),
    ]  # fmt: skip
    outcomes = {tuple(cluster(order, CONFIG).stories) for order in itertools.permutations(records)}
    assert len(outcomes) == 1


def test_letting_go_of_stories_past_the_window_changes_no_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Weeks of stories sharing word pairs ("power apps" in every title) with copies a
    # few hours apart: forgetting every few stories must cluster as never forgetting.
    import random

    import aggregator.cluster as clustering

    rng = random.Random(5)
    words = ["outage", "pricing", "licensing", "connector", "copilot", "gallery", "dataverse",
             "offline", "security", "portal", "release", "preview", "governance",
             "agents"]  # fmt: skip
    outlets = ["ZDNet", "ITPro", "TechRepublic", "The Register", "Microsoft"]
    records, n = [], 0
    for story in range(400):
        hour = story * 2.5
        title = f"Power Apps {' '.join(rng.sample(words, 3))} news for admins"
        for retelling in range(rng.choice([1, 1, 1, 2, 3])):
            n += 1
            told = title if not retelling else f"{title} explained"
            records.append(copy(n, told, hour + retelling, outlets[(story + retelling) % 5]))
    let_go = []
    forget = clustering._forget

    def spy(*args):  # type: ignore[no-untyped-def]
        let_go.append(forget(*args))
        return let_go[-1]

    def outcome() -> tuple[object, ...]:
        found = cluster(records, CONFIG)
        return (tuple(found.stories), tuple(sorted(
            (guid, tuple(r.guid for r in members)) for guid, members in found.members.items())))

    monkeypatch.setattr(clustering, "FORGET_EVERY", 1 << 40)
    remembering = outcome()
    monkeypatch.setattr(clustering, "FORGET_EVERY", 7)
    monkeypatch.setattr(clustering, "_forget", spy)
    assert outcome() == remembering
    assert len(remembering[1]) > 20  # copies did merge
    assert let_go and let_go[-1] > 400  # and most stories were let go of on the way


def site(folder: Path, extra: str = "") -> Path:
    return write_config(folder, ["records"], extra)


def story_file(folder: Path, name: str, n: int, title: str, hour: float, outlet: str, **extra):
    provider = {"name": outlet, "domain": f"{outlet.lower()}.example"}
    data = fields(n, title=title, publishedDateTime=at(hour), provider=provider, **extra)
    return write_record(folder / "records", name, data)


def test_a_later_copy_joining_a_story_keeps_its_guid_and_dates(tmp_path: Path) -> None:
    story_file(tmp_path, "a.md", 1, RETOLD[0], 9, "ZDNet", quality=60)
    story_file(tmp_path, "other.md", 7, "A different story about robots", 8, "Robots Daily")
    config = load_config(site(tmp_path))
    build(config)
    output = config.site.output_dir

    def items() -> dict[str, tuple[str, str, str]]:
        feed = feedparser.parse((output / "atom.xml").read_bytes())
        return {e.id: (e.published, e.updated, e.title) for e in feed.entries}

    before = items()
    rss_before = feedparser.parse((output / "rss.xml").read_bytes())
    # a better-rated copy from another outlet arrives later
    story_file(tmp_path, "b.md", 2, RETOLD[1], 12, "TechRepublic", quality=95, heat=90)
    report = build(config)
    assert report.duplicates == 1
    after = items()
    assert after.keys() == before.keys()  # same guids: readers show nothing again
    guid = next(iter(k for k in before if "outlet1" in k))
    assert after[guid][:2] == before[guid][:2]  # same dates
    assert after[guid][2] == RETOLD[1]  # the better copy's title
    rss_after = feedparser.parse((output / "rss.xml").read_bytes())
    assert [e.id for e in rss_after.entries] == [e.id for e in rss_before.entries]
    json_feed = json.loads((output / "feed.json").read_text("utf-8"))
    [item] = [i for i in json_feed["items"] if i["id"] == guid]
    assert item["_aggregator"]["also_covered_by"][0]["provider"] == "ZDNet"
    assert "Also covered by" in item["content_html"]
    page = (output / "index.html").read_text("utf-8")
    assert "Also covered by" in page and 'href="https://www.outlet1.example' in page
    # the incremental build wrote what a full build writes
    fresh = tmp_path / "fresh"
    build(config, fresh, full=True)
    assert tree_bytes(fresh) == tree_bytes(output)


def test_file_order_and_worker_count_give_the_same_bytes(tmp_path: Path) -> None:
    outputs = []
    for round_, (names, workers) in enumerate([(("a", "b", "c"), 1), (("z", "y", "x"), 2)]):
        folder = tmp_path / f"site-{round_}"
        for name, (n, title, hour, outlet) in zip(
            names,
            [(1, RETOLD[0], 9, "ZDNet"), (2, RETOLD[1], 11, "TechRepublic"),
             (3, RETOLD[2], 15, "ITPro")],
            strict=True,
        ):  # fmt: skip
            story_file(folder, f"{name}.md", n, title, hour, outlet)
        config = load_config(site(folder, f"[build]\nworkers = {workers}\n"))
        build(config, tmp_path / f"out-{round_}")
        outputs.append(tree_bytes(tmp_path / f"out-{round_}"))
    assert outputs[0] == outputs[1]


def test_the_window_counts_from_the_first_copy(tmp_path: Path) -> None:
    first = make_record(1, title=RETOLD[0], publishedDateTime="2026-11-10T00:00:00Z",
                        provider={"name": "A"})  # fmt: skip
    second = make_record(2, title=RETOLD[0], publishedDateTime="2026-11-12T12:00:00Z",
                         provider={"name": "B"})  # fmt: skip
    third = make_record(3, title=RETOLD[0], publishedDateTime="2026-11-13T06:00:00Z",
                        provider={"name": "C"})  # fmt: skip
    clustering = cluster([first, second, third], CONFIG)
    assert len(clustering.stories) == 2  # 78 h after the first: a story of its own
    assert (third.published - first.published) > timedelta(hours=72)
