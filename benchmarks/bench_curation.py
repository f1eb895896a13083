"""Benchmark: curation quality of every feed, on three sets of records.

    python benchmarks/bench_curation.py             # examples, ../shared/corpus, synthetic
    python benchmarks/bench_curation.py --json      # the same figures as JSON

For each feed (the all-topics feed and one per topic) it measures, with the default
settings (only the sources differ):

- fill: items / min(max_items, stories the feed could show);
- repeats: items that tell a story another item of the same feed already tells
  (by the ground truth below, not by the tool's own clustering);
- top share: the largest share of the feed's items from one provider;
- newest: whether the feed holds the newest story of its topic;
- churn: items that leave the feed when k new records (k = 1, 10) are added.

Ground truth of which records tell one story: for the synthetic records, the generator
knows (copies: syndicated, regional editions, retold titles; and templated series that
must stay apart); for ../shared/corpus, the same-story groups its README lists (by
file name), and for the bundled examples the one newsletter copy. For the synthetic
set it also reports the clustering's pairwise precision and recall: false merges
(records of different stories made one item) and missed merges.

The pipeline runs in this process (read, cluster, rank, choose), writing nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))

from aggregator.collect import Collection, collect  # noqa: E402
from aggregator.config import Config, load_config, parse_config  # noqa: E402
from aggregator.curate import Curation, curate  # noqa: E402
from aggregator.model import Record  # noqa: E402
from aggregator.topics import topic_key  # noqa: E402

# Same-story groups named in ../shared/corpus/README.md ("Duplicate stories", "clusters").
CORPUS_STORIES = (
    ("2021-03-09-synopsys-arc-ev-processor", "2021-03-10-synopsys-arc-ev-processor"),
    (
        "2021-03-04-artificial-intelligence-reveals-current-drugs",
        "2021-03-06-artificial-intelligence-reveals-current-drugs",
    ),
    ("2021-03-09-aiict-introduces-new-certified", "2021-03-12-aiict-with-aws-offers-new-certified"),
    ("2021-03-03-pga-tour-partners-with-aws", "2021-03-03-pga-tour-signs-up-with-aws"),
    ("2021-03-09-vmware-nvidia-alliance-expands", "2021-03-12-nvidia-launches-ai-enterprise-suite"),
    ("2019-12-20-computer-vision-and-the-ccpa", "2019-12-21-computer-vision-and-the-ccpa"),
    (
        "2019-12-24-google-cloud-team-releases-automl",
        "2019-12-25-google-cloud-team-releases-automl",
    ),
    (
        "2019-12-17-why-some-cities-and-states-balk",
        "2019-12-18-why-some-cities-states-and-lawmakers",
    ),
    (
        "2019-12-20-facebook-removes-hundreds-of-fake",
        "2019-12-20-facebook-discovers-fakes",
        "2019-12-22-facebook-says-group-used-ai-generated-faces",
        "2019-12-23-facebook-removes-manipulative-accounts",
        "2019-12-23-far-right-outfit-uses-ai",
    ),
    (
        "2020-11-16-reshape-the-future-of-work-with-microsoft-dataverse",
        "2020-11-17-microsoft-announces-general-availability-of-new-power-apps",
        "2020-11-17-microsoft-teams-enhances",
        "2020-11-17-microsoft-teams-power-apps-and-dataverse",
    ),
    (
        "2019-12-23-artificial-intelligence-that-tracks-down-leukemia",
        "2019-12-26-artificial-intelligence-tracks-down-acute-myeloid-leukaemia",
    ),
)
EXAMPLE_STORIES = (("open-weights-translation-model",),)


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    config: Config
    truth: dict[str, str]  # record origin (file) -> story id; files not named are alone
    add: list[tuple[str, str]]  # (file name, text) of records to add for the churn figure


@dataclass(frozen=True, slots=True)
class FeedFigures:
    feed: str
    items: int
    available: int
    fill: float
    repeats: int
    top_share: float
    newest: bool
    churn_1: int = 0
    churn_10: int = 0


def story_of(record: Record, truth: dict[str, str]) -> str:
    """The story a record tells: by the ground truth, else its own (one per link)."""
    return truth.get(record.origin, record.guid)


def item_stories(item: Record, members: dict[str, tuple[Record, ...]], truth) -> set[str]:
    return {story_of(r, truth) for r in members.get(item.guid, (item,))}


def figures(
    config: Config, truth: dict[str, str]
) -> tuple[list[FeedFigures], Curation, Collection]:
    collection = collect(config)
    curated = curate(config, collection)
    members = curated.clustering.members
    stories = curated.clustering.stories
    newest_of: dict[str | None, Record] = {}
    for story in stories:
        keys = [None, *(topic_key(name) for name in story.topics)]
        for key in keys:
            best = newest_of.get(key)
            if best is None or (story.published, story.guid) > (best.published, best.guid):
                newest_of[key] = story
    rows = []
    for plan in curated.plans:
        key = None if plan.topic is None else plan.topic.key
        items = plan.items
        seen: Counter[str] = Counter()
        repeats = 0
        for item in items:
            told = item_stories(item, members, truth)
            if any(seen[s] for s in told):
                repeats += 1
            seen.update(told)
        providers = Counter(item.provider_key for item in items)
        newest = newest_of.get(key)
        rows.append(
            FeedFigures(
                feed="(all topics)" if plan.topic is None else plan.topic.name,
                items=len(items),
                available=plan.total,
                fill=len(items) / max(1, min(config.feeds.max_items, plan.total)),
                repeats=repeats,
                top_share=max(providers.values()) / len(items) if items else 0.0,
                newest=newest is None or any(item.guid == newest.guid for item in items),
            )
        )
    return rows, curated, collection


def with_churn(dataset: Dataset, rows: list[FeedFigures]) -> list[FeedFigures]:
    """Each feed's items that leave when the first k of `dataset.add` are added."""
    base = {row.feed: row for row in rows}
    before, _ = plans_by_feed(dataset.config, [])
    out = {name: row for name, row in base.items()}
    for k in (1, 10):
        after, _ = plans_by_feed(dataset.config, dataset.add[:k])
        for name, guids in before.items():
            left = len(guids - after.get(name, set()))
            row = out[name]
            out[name] = replace(row, churn_1=left) if k == 1 else replace(row, churn_10=left)
    return [out[row.feed] for row in rows]


def plans_by_feed(config: Config, extra: list[tuple[str, str]]):
    with tempfile.TemporaryDirectory() as folder:
        if extra:
            for name, text in extra:
                (Path(folder) / name).write_text(text, encoding="utf-8")
            sources = (
                *config.sources,
                replace(config.sources[0], path=Path(folder), name=folder, include=(), exclude=()),
            )
            config = replace(config, sources=sources)
        curated = curate(config, collect(config))
        return {
            ("(all topics)" if p.topic is None else p.topic.name): {i.guid for i in p.items}
            for p in curated.plans
        }, curated


def pairwise(curated, truth: dict[str, str], records: Iterable[Record]) -> dict[str, float]:
    """Clustering against the ground truth, over pairs of records."""
    predicted: dict[str, str] = {}
    for guid, group in curated.clustering.members.items():
        for record in group:
            predicted[record.origin] = guid
    origins = [r.origin for r in records]
    true_pairs = pred_pairs = both = 0
    by_story: dict[str, list[str]] = {}
    for origin in origins:
        by_story.setdefault(truth.get(origin, origin), []).append(origin)
    by_cluster: dict[str, list[str]] = {}
    for origin in origins:
        by_cluster.setdefault(predicted.get(origin, origin), []).append(origin)
    true_set = {frozenset(p) for g in by_story.values() for p in combinations(g, 2)}
    pred_set = {frozenset(p) for g in by_cluster.values() for p in combinations(g, 2)}
    true_pairs, pred_pairs, both = len(true_set), len(pred_set), len(true_set & pred_set)
    return {
        "true_pairs": true_pairs,
        "merged_pairs": pred_pairs,
        "false_merges": pred_pairs - both,
        "missed_merges": true_pairs - both,
        "precision": both / pred_pairs if pred_pairs else 1.0,
        "recall": both / true_pairs if true_pairs else 1.0,
    }


# --- the data sets -----------------------------------------------------------------------------


def site_toml(sources: Sequence[Path], extra: str = "") -> str:
    tables = "".join(f'\n[[sources]]\npath = "{path}"\n' for path in sources)
    return (
        '[site]\ntitle = "Bench"\nbase_url = "https://bench.example.org/"\noutput_dir = "out"\n'
        f'[build]\nstate_path = "state.db"\n{tables}{extra}'
    )


def config_from(text: str, folder: Path) -> Config:
    import tomllib

    return parse_config(tomllib.loads(text), folder / "config.toml")


def truth_from_names(folder: Path, groups: Sequence[Sequence[str]]) -> dict[str, str]:
    truth = {}
    for number, prefixes in enumerate(groups):
        for path in sorted(folder.rglob("*")):
            if any(prefix in path.name for prefix in prefixes):
                truth[str(path)] = f"story-{number}"
    return truth


def examples() -> Dataset:
    config = load_config(ROOT / "config.toml")
    folder = ROOT / "examples" / "records"
    return Dataset(
        "bundled examples",
        config,
        truth_from_names(folder, EXAMPLE_STORIES),
        SyntheticMaker(7, providers=8).new_records(10, "2026-12-01"),
    )


def corpus() -> Dataset | None:
    folders = [
        CORPUS / name for name in ("everyday-ai", "everyday-cc-powerapps", "everyday-powerapps-api")
    ]
    if not all(folder.is_dir() for folder in folders):
        return None
    config = config_from(site_toml(folders), Path(tempfile.gettempdir()))
    truth: dict[str, str] = {}
    for folder in folders:
        truth.update(truth_from_names(folder, CORPUS_STORIES))
    return Dataset(
        "../shared/corpus",
        config,
        truth,
        SyntheticMaker(11, providers=8).new_records(10, "2023-09-06"),
    )


_COMPANIES = (
    "Microsoft Google Amazon Apple Meta Nvidia Intel IBM Oracle Salesforce SAP Adobe Cisco "
    "Samsung Sony Tesla Uber Airbnb Spotify Netflix OpenAI Anthropic Baidu Alibaba Tencent "
    "Siemens Bosch Philips Ericsson Nokia Dell HP Lenovo Asus Qualcomm AMD Arm Broadcom"
)
COMPANIES = _COMPANIES.split()
_VERBS = (
    "launches unveils expands acquires delays cuts tests opens closes fixes patches "
    "previews ships sues wins loses raises partners updates retires rebuilds"
)
VERBS = _VERBS.split()
_THINGS = (
    "cloud platform for hospitals; chip plant in Arizona; privacy dashboard for teens; "
    "satellite network over Africa; robot fleet in warehouses; battery recycling program; "
    "translation model for dialects; security bug bounty; developer conference plans; "
    "low-code app builder; data center in Finland; quantum computing service; "
    "self-driving taxi pilot; smart glasses prototype; climate research fund; "
    "customer support chatbot; payments app in India; music licensing deal; "
    "content moderation rules; open source model weights; supply chain tracker; "
    "school laptop program; cyber defense unit; streaming price plans; voice assistant"
)
THINGS = _THINGS.split("; ")
TOPICS = (
    "AI",
    "Cloud",
    "Security",
    "Hardware",
    "Mobile",
    "Climate",
    "Robots",
    "Space",
    "Power Apps",
    "Policy",
    "Startups",
    "Chips",
)
PLACES = (
    "in Europe",
    "in Japan",
    "for schools",
    "for banks",
    "in Texas",
    "for startups",
    "in Brazil",
    "for farmers",
    "in Kenya",
    "for gamers",
    "in Canada",
    "for nurses",
)
MONTHS = ("January", "February", "March", "April", "May", "June")
PREFIXES = ("Report: ", "Exclusive: ", "Update: ")


class SyntheticMaker:
    """Records with known stories: each story has one to four copies."""

    def __init__(self, seed: int, providers: int = 40) -> None:
        self.rng = random.Random(seed)
        self.providers = [("Microsoft", "microsoft.com")] + [
            (f"Outlet {n}", f"outlet{n}.example") for n in range(1, providers)
        ]
        # One provider files 79 % of everything (as Microsoft does on the real Power Apps
        # site), the others on a Zipf-like spread.
        others = [1.0 / n for n in range(1, providers)]
        self.weights = [0.79 / 0.21 * sum(others), *others]
        self.count = 0
        self.used: set[tuple[str, str, str]] = set()  # each story its own subject

    def provider(self, other_than: str | None = None) -> tuple[str, str]:
        while True:
            chosen = self.rng.choices(self.providers, self.weights)[0]
            if chosen[0] != other_than:
                return chosen

    def text(
        self,
        title: str,
        when: datetime,
        provider: tuple[str, str],
        link: str,
        topics: Sequence[str],
        quality: int,
        heat: int,
    ) -> str:
        topic_lines = "".join(f"  - {t}\n" for t in topics)
        return (
            f"---\ntitle: {json.dumps(title)}\nexcerpt: {json.dumps('About ' + title.lower())}\n"
            f"publishedDateTime: {when:%Y-%m-%dT%H:%M:%SZ}\nwebUrl: {json.dumps(link)}\n"
            f"quality: {quality}\nheat: {heat}\npublished: true\n"
            f"provider:\n  name: {json.dumps(provider[0])}\n  domain: {provider[1]}\n"
            f"topics:\n{topic_lines}---\n"
        )

    def story(self, start: datetime, span_hours: float) -> list[tuple[str, str, str]]:
        """One story and its copies: [(file name, text, story id)]."""
        rng = self.rng
        self.count += 1
        story_id = f"s{self.count}"
        while True:
            subject = (rng.choice(COMPANIES), rng.choice(THINGS), rng.choice(PLACES))
            if subject not in self.used:
                self.used.add(subject)
                break
        company, thing, place = subject
        verb = rng.choice(VERBS)
        title = f"{company} {verb} {thing} {place}"
        when = start + timedelta(hours=rng.uniform(0, span_hours))
        provider = self.provider()
        topics = rng.sample(TOPICS, rng.randint(1, 2))
        quality, heat = rng.randint(20, 100), rng.randint(0, 100)
        slug = "-".join(title.lower().split())
        link = f"https://{provider[1]}/news/{slug}-{self.count}"
        out = [
            (
                f"{story_id}-0.md",
                self.text(title, when, provider, link, topics, quality, heat),
                story_id,
            )
        ]
        if rng.random() < 0.05:
            # Another story about the same subject a day later: the same words but the
            # verb ("Meta cuts ..." after "Meta expands ..."). It must stay apart.
            self.count += 1
            other_verb = rng.choice([v for v in VERBS if v != verb])
            other = f"{company} {other_verb} {thing} {place}"
            later = when + timedelta(hours=rng.uniform(6, 40))
            other_provider = self.provider()
            other_link = f"https://{other_provider[1]}/news/{self.count}"
            out.append(
                (
                    f"s{self.count}-0.md",
                    self.text(other, later, other_provider, other_link, topics, quality, heat),
                    f"s{self.count}",
                )
            )
        if rng.random() < 0.2:
            for n in range(1, rng.randint(2, 4)):
                kind = rng.choice(("syndicated", "regional", "retold"))
                copy_provider, copy_title, copy_link = provider, title, link
                later = when + timedelta(hours=rng.uniform(0, 30))
                if kind == "regional":
                    copy_link = link.replace("/news/", f"/{rng.choice(['sg', 'uk', 'au'])}/news/")
                else:
                    copy_provider = self.provider(other_than=provider[0])
                    copy_link = f"https://{copy_provider[1]}/{slug}-copy-{n}"
                if kind == "retold":
                    copy_title = rng.choice(PREFIXES) + title
                    words = copy_title.split()
                    if len(words) > 5:  # a word dropped as a sub-editor would
                        del words[rng.randrange(2, len(words))]
                    copy_title = " ".join(words)
                text = self.text(
                    copy_title,
                    later,
                    copy_provider,
                    copy_link,
                    topics,
                    rng.randint(20, 100),
                    rng.randint(0, 100),
                )
                out.append((f"{story_id}-{n}.md", text, story_id))
        return out

    def series(self, start: datetime) -> list[tuple[str, str, str]]:
        """A templated series: one provider, titles that differ in a month or a number."""
        rng = self.rng
        name = rng.choice(COMPANIES)
        out = []
        for index, label in enumerate(
            rng.choice(
                [MONTHS[:3], ("2019 release wave 2", "2020 release wave 1", "2020 release wave 2")]
            )
        ):
            self.count += 1
            title = f"{name} Power Platform {label} update overview"
            when = start + timedelta(hours=index * 7)
            link = f"https://{name.lower()}.example/updates/{self.count}"
            text = self.text(
                title, when, (name, f"{name.lower()}.example"), link, ["Power Apps"], 60, 50
            )
            out.append((f"series-{self.count}.md", text, f"series-{self.count}"))
        return out

    def new_records(self, count: int, day: str) -> list[tuple[str, str]]:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        out = []
        while len(out) < count:
            name, text, _ = self.story(start, 24)[0]
            out.append((f"added-{name}", text))
        return out


def synthetic(folder: Path, stories: int = 1500) -> Dataset:
    maker = SyntheticMaker(20261201)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    truth: dict[str, str] = {}
    records = folder / "records"
    records.mkdir(parents=True, exist_ok=True)
    for index in range(stories):
        made = maker.story(start, 60 * 24)
        if index % 50 == 0:
            made += maker.series(start + timedelta(days=index / 25))
        for name, text, story in made:
            path = records / name
            path.write_text(text, encoding="utf-8")
            truth[str(path)] = story
    (folder / "config.toml").write_text(site_toml([records]), encoding="utf-8")
    config = load_config(folder / "config.toml")
    return Dataset(
        "synthetic (near-duplicate copies)", config, truth, maker.new_records(10, "2026-11-01")
    )


# --- report ------------------------------------------------------------------------------------


def summary(rows: list[FeedFigures]) -> dict[str, object]:
    return {
        "feeds": len(rows),
        "fill_min": min(r.fill for r in rows),
        "fill_mean": statistics.fmean(r.fill for r in rows),
        "feeds_fill_below_0.9": sum(r.fill < 0.9 for r in rows),
        "repeats": sum(r.repeats for r in rows),
        "top_share_max": max(r.top_share for r in rows),
        "top_share_median": statistics.median(r.top_share for r in rows),
        "feeds_without_newest": sum(not r.newest for r in rows),
        "churn_k1_mean": statistics.fmean(r.churn_1 for r in rows),
        "churn_k10_mean": statistics.fmean(r.churn_10 for r in rows),
        "churn_k10_max": max(r.churn_10 for r in rows),
    }


def sweep(dataset: Dataset) -> list[dict[str, object]]:
    """The synthetic set under other settings: provider_penalty (diversity against the
    score) and title_similarity (false merges against missed ones)."""
    collection = collect(dataset.config)
    rows: list[dict[str, object]] = []
    for penalty in (0.0, 0.25, 0.5, 1.0, 2.0):
        config = replace(
            dataset.config, ranking=replace(dataset.config.ranking, provider_penalty=penalty)
        )
        plans = curate(config, collection).plans[1:]  # the topic feeds
        shares = [
            max(Counter(i.provider_key for i in p.items).values()) / len(p.items)
            for p in plans
            if p.items
        ]
        providers = [len({i.provider_key for i in p.items}) for p in plans if p.items]
        worth = [statistics.fmean(i.quality + i.heat for i in p.items) for p in plans if p.items]
        rows.append(
            {
                "provider_penalty": penalty,
                "top_share_median": statistics.median(shares),
                "providers_median": statistics.median(providers),
                "quality_plus_heat_mean": statistics.fmean(worth),
            }
        )
    for similarity in (70.0, 75.0, 80.0, 85.0, 90.0):
        config = replace(
            dataset.config,
            clustering=replace(dataset.config.clustering, title_similarity=similarity),
        )
        found = pairwise(curate(config, collection), dataset.truth, collection.records)
        rows.append({"title_similarity": similarity, **found})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--feeds", action="store_true", help="print every feed's row")
    parser.add_argument("--stories", type=int, default=1500, help="synthetic stories")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also: the synthetic set under other penalties and thresholds",
    )
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        datasets = [examples(), corpus(), synthetic(Path(work), args.stories)]
        for dataset in datasets:
            if dataset is None:
                print(f"skipped: no corpus at {CORPUS}", file=sys.stderr)
                continue
            rows, curated, collection = figures(dataset.config, dataset.truth)
            rows = with_churn(dataset, rows)
            entry: dict[str, object] = {"summary": summary(rows)}
            if dataset.name.startswith("synthetic"):
                entry["clustering"] = pairwise(curated, dataset.truth, collection.records)
            entry["feeds"] = [_row(row) for row in rows]
            if args.sweep and dataset.name.startswith("synthetic"):
                entry["sweep"] = sweep(dataset)
            results[dataset.name] = entry
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, entry in results.items():
        print(f"== {name}")
        for key, value in entry["summary"].items():
            print(f"  {key:24} {value:.3f}" if isinstance(value, float) else f"  {key:24} {value}")
        if "clustering" in entry:
            print(
                "  clustering: "
                + ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in entry["clustering"].items()
                )
            )
        if args.feeds:
            for row in entry["feeds"]:
                print("   ", row)
        for row in entry.get("sweep", []):
            print(
                "  sweep: "
                + ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                )
            )
    return 0


def _row(row: FeedFigures) -> dict[str, object]:
    return {name: getattr(row, name) for name in FeedFigures.__slots__}


if __name__ == "__main__":
    raise SystemExit(main())
