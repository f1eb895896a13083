"""Benchmark: aggregator builds (cold, no change, +10 files) against Hugo, same records.

    python benchmarks/bench_build.py                 # N = 10 000 and 100 000
    python benchmarks/bench_build.py --sizes 2000 --repeat 1    # a quick run

Generates N synthetic records shaped like the real ones (front-matter Markdown with
60 topics on a Zipf-like spread, 1-3 topics each, 500 providers, 5 % duplicate stories,
20-60 word excerpts, images, some `related`) under benchmarks/_work/ (git-ignored), then
times in one run, each as its own process: an aggregator cold build (no state, no
output) and the same with story clustering off (what clustering costs), a rebuild with
nothing changed, a rebuild after adding 10 files (the next records of the same
stream), after 10 heat edits of old records (what the upstream API does most), after
10 old records are deleted, and Hugo (Debian package `hugo`) building per-topic RSS
from the same files. Peak memory is the resident memory of the build and its worker
processes together, twice: the sum of their RSS (sampled every 10 ms), which counts a
page a forked worker shares with the build once in each, and the sum of their PSS
(every 0.2 s: it costs the kernel a walk of every page), which counts it once (what
they take from the machine). The record files are read once first (both
tools then find them in the page cache); each step runs `--repeat` times (default 3), the rounds
interleaving aggregator and Hugo; prints the median seconds, the ratios to Hugo's
median, the largest peak RSS of each step and every round's time. Needs `hugo` on PATH.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
SEED = 20261101
TOPIC_COUNT = 60
PROVIDER_COUNT = 500
DUPLICATE_SHARE = 0.05
FEED_ITEMS = 50
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 2 * 365 * 24 * 3600

VOCABULARY = (
    "model data robot launch chip grid battery orbit qubit privacy breach patch startup "
    "funding market research network cloud vision language speech agent benchmark policy "
    "climate solar carbon hydrogen rocket satellite sensor camera vehicle drone factory "
    "hospital school bank city farm energy storage training inference open source release "
    "update report study survey team lab company government regulator court ruling deal "
    "merger partnership pilot test trial record growth decline risk threat attack defense "
    "quantum neural compute memory silicon software hardware platform service device"
)
WORDS = VOCABULARY.split()


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    seconds: float
    cpu_seconds: float  # user + system time of the process and its children
    peak_rss_mb: float  # the resident memory of every process together, summed
    exit_code: int
    # The same, each page shared between processes (a forked worker's inherited pages)
    # counted once, split among them: the memory the build takes from the machine.
    peak_pss_mb: float = 0.0


def zipf_weights(count: int, exponent: float = 1.0) -> list[float]:
    return [1.0 / (rank + 1) ** exponent for rank in range(count)]


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RecordMaker:
    """Deterministic synthetic records in the format of the real front-matter files."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.topics = [f"{words(self.rng, 1, 2).title()} {index}" for index in range(TOPIC_COUNT)]
        self.topics[0] = "AI"
        self.topic_weights = zipf_weights(TOPIC_COUNT)
        self.providers = [
            (f"{words(self.rng, 1, 2).title()} News {index}", f"news{index}.example.com")
            for index in range(PROVIDER_COUNT)
        ]
        self.provider_weights = zipf_weights(PROVIDER_COUNT, 0.8)
        self.links: list[str] = []

    def pick_topics(self) -> list[str]:
        wanted = self.rng.randint(1, 3)
        chosen: list[str] = []
        while len(chosen) < wanted:
            topic = self.rng.choices(self.topics, self.topic_weights)[0]
            if topic not in chosen:
                chosen.append(topic)
        return chosen

    def record(self, index: int) -> tuple[str, str]:
        """Return (file name, file text) of record `index`."""
        rng = self.rng
        name, domain = rng.choices(self.providers, self.provider_weights)[0]
        published = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
        title = words(rng, 5, 12).capitalize()
        slug = "-".join(title.lower().split()[:8])
        if self.links and rng.random() < DUPLICATE_SHARE:
            link = rng.choice(self.links) + "?utm_source=newsletter"  # same story, tracked
        else:
            link = f"https://{domain}/{published:%Y/%m/%d}/{slug}-{index}/"
            self.links.append(link)
        lines = [
            "---",
            "category: news",
            f"title: {quoted(title)}",
            f"excerpt: {quoted(words(rng, 20, 60).capitalize() + '.')}",
            f"publishedDateTime: {published:%Y-%m-%dT%H:%M:%SZ}",
            f"originalUrl: {quoted(link)}",
            f"webUrl: {quoted(link)}",
            "type: article",
            f"quality: {rng.choice([-1, *range(20, 101)])}",
            f"heat: {rng.choice([-1, *range(0, 101)])}",
            "published: true",
            "",
            "provider:",
            f"  name: {name}",
            f"  domain: {domain}",
            "",
            "topics:",
            *(f"  - {topic}" for topic in self.pick_topics()),
        ]
        if rng.random() < 0.8:
            lines += [
                "",
                "images:",
                f'  - url: "https://cdn.{domain}/images/{index}.jpg"',
                f"    width: {rng.choice([640, 800, 1200, 1565])}",
                f"    height: {rng.choice([360, 450, 630, 778])}",
                "    isCached: true",
            ]
        if rng.random() < 0.2:
            lines += ["", "related:"]
            for number in range(rng.randint(1, 4)):
                other_name, other_domain = rng.choice(self.providers)
                lines += [
                    f"  - title: {quoted(words(rng, 5, 10).capitalize())}",
                    f"    excerpt: {quoted(words(rng, 20, 40).capitalize())}",
                    f"    publishedDateTime: {published:%Y-%m-%dT%H:%M:%SZ}",
                    f'    webUrl: "https://{other_domain}/related/{index}-{number}/"',
                    "    type: article",
                    "    provider:",
                    f"      name: {other_name}",
                    f"      domain: {other_domain}",
                ]
        secured = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789+/", k=300))
        lines += ["", f'secured: "{secured}=="', "---", ""]
        return f"{published:%Y-%m-%d}-{slug}-{index}.md", "\n".join(lines)


def generate(records_dir: Path, count: int, start: int = 0, seed: int = SEED) -> list[Path]:
    records_dir.mkdir(parents=True, exist_ok=True)
    maker = RecordMaker(seed)
    made = []
    for index in range(start + count):
        name, text = maker.record(index)
        if index >= start:
            path = records_dir / name
            path.write_text(text, encoding="utf-8")
            made.append(path)
    return made


SITE_CONFIG = f"""
[site]
title = "Benchmark News"
base_url = "https://bench.example.org/"
output_dir = "feeds"

[[sources]]
path = "records"

[build]
state_path = "state/state.db"

[feeds]
max_items = {FEED_ITEMS}
"""


def prepare(count: int) -> Path:
    """A folder with `count` records (reused when already generated)."""
    folder = WORK / str(count)
    records = folder / "records" / "news"
    stamp = folder / "generated"
    if not stamp.exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate(records, count)
        stamp.write_text(str(count))
    for extra in records.glob("*-extra-*.md"):  # files added by an earlier run's +10 step
        extra.unlink()
    (folder / "config.toml").write_text(SITE_CONFIG, encoding="utf-8")
    # The same build with story clustering off: what clustering costs a cold build.
    (folder / "config-no-clustering.toml").write_text(
        (folder / "config.toml").read_text(encoding="utf-8")
        .replace('output_dir = "feeds"', 'output_dir = "feeds-no-clustering"')
        .replace('state_path = "state/state.db"', 'state_path = "state-no-clustering/state.db"')
        + "\n[clustering]\nenabled = false\n",
        encoding="utf-8",
    )  # fmt: skip
    (folder / "hugo.toml").write_text(
        f"""
baseURL = "https://bench.example.org/"
title = "Benchmark News"
contentDir = "records"
publishDir = "hugo-public"
disableKinds = ["sitemap", "robotsTXT", "404"]

[taxonomies]
topic = "topics"

[frontmatter]
date = ["publishedDateTime"]
publishDate = ["publishedDateTime"]

[outputs]
home = ["RSS"]
section = ["RSS"]
taxonomy = ["RSS"]
term = ["RSS"]
page = []

[services.rss]
limit = {FEED_ITEMS}
""",
        encoding="utf-8",
    )
    return folder


def tree_memory_kb(root: int, *, proportional: bool = True) -> tuple[int, int]:
    """The resident memory of a process and all its descendants together (kB): the sum
    of their RSS, and (with `proportional`, else 0) the sum of their PSS (proportional
    set size: a page that n of them share counts 1/n in each, so the sum is what they
    hold of the machine)."""
    total, pss, waiting = 0, 0, [root]
    while waiting:
        pid = waiting.pop()
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            if proportional:
                with open(f"/proc/{pid}/smaps_rollup", encoding="ascii",
                          errors="replace") as rollup:  # fmt: skip
                    for line in rollup:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1])
                            break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                    waiting.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total, pss


def timed(command: list[str], cwd: Path) -> Step:
    """Run `command` as a child process; its wall time, CPU time and the peak of the
    resident memory of it and its worker processes together (sampled every 10 ms)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, env=CHILD_ENV)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        # PSS every 20th sample (0.2 s): the kernel walks every page of the processes
        # to count it, which at a few GB would take the sampler half a core every 10 ms.
        count = 0
        while not done.is_set():
            rss, pss = tree_memory_kb(process.pid, proportional=count % 20 == 0)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            count += 1
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    # ru_maxrss is the largest single process; the sampled sum is every process at once.
    return Step(" ".join(command), seconds, cpu, max(peak[0], usage.ru_maxrss) / 1024, code,
                peak[1] / 1024)  # fmt: skip


def aggregator_build(folder: Path, *extra: str) -> Step:
    return timed([sys.executable, "-m", "aggregator", "build", "-q", *extra], folder)


HEAT = re.compile(r"^heat: .*$", re.MULTILINE)
# The builds run as an installed program runs from cron: with Python's bytecode cache.
# A sandbox that sets PYTHONDONTWRITEBYTECODE would have every run compile every module
# again (about 0.1 s), which no installed copy does (pip writes the cache on install).
CHILD_ENV = {name: value for name, value in os.environ.items()
             if name != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip


def run(count: int, repeat: int) -> dict[str, list[Step]]:
    """Each step `repeat` times; the rounds interleave aggregator and Hugo, so both meet
    the same machine (a shared machine's speed drifts by a quarter within minutes)."""
    folder = prepare(count)
    news = folder / "records" / "news"
    # The next 10 records of the same stream: same topics and providers, new stories.
    extra = folder / "extra"
    shutil.rmtree(extra, ignore_errors=True)
    added = generate(extra, 10, start=count)
    aside = folder / "aside"
    steps: dict[str, list[Step]] = {
        name: [] for name in ("cold", "cold, no clustering", "no change", "+10 files",
                              "10 heat edits", "10 deletions", "hugo")
    }  # fmt: skip
    warm_page_cache(news)
    # Compile the program's bytecode once, as installing it does, before anything is timed.
    subprocess.run([sys.executable, "-m", "aggregator", "--version"], env=CHILD_ENV, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    files = sorted(news.iterdir())
    rng = random.Random(SEED)
    for _ in range(repeat):
        for name in ("state", "feeds", "hugo-public", "state-no-clustering",
                     "feeds-no-clustering"):  # fmt: skip
            shutil.rmtree(folder / name, ignore_errors=True)
        subprocess.run(["sync"], check=False)
        steps["cold, no clustering"].append(
            aggregator_build(folder, "--config", "config-no-clustering.toml")
        )
        steps["cold"].append(aggregator_build(folder))
        steps["no change"].append(aggregator_build(folder))
        for path in added:
            shutil.copy2(path, news / f"{path.stem}-extra-{count}.md")
        steps["+10 files"].append(aggregator_build(folder))
        # What the upstream API does most: new heat for a few old records.
        edited = rng.sample(files, 10)
        before = {path: path.read_text(encoding="utf-8") for path in edited}
        for path, text in before.items():
            path.write_text(HEAT.sub(f"heat: {rng.randint(0, 100)}", text, count=1),
                            encoding="utf-8")  # fmt: skip
        steps["10 heat edits"].append(aggregator_build(folder))
        for path, text in before.items():
            path.write_text(text, encoding="utf-8")
        aggregator_build(folder)  # back to the records as generated (not timed)
        # Ten old records withdrawn (moved aside, put back afterwards).
        aside.mkdir(exist_ok=True)
        gone = rng.sample([path for path in files if path not in before], 10)
        for path in gone:
            path.rename(aside / path.name)
        steps["10 deletions"].append(aggregator_build(folder))
        for path in gone:
            (aside / path.name).rename(path)
        for path in news.glob("*-extra-*.md"):
            path.unlink()
        aggregator_build(folder)  # back again (not timed)
        steps["hugo"].append(timed(
            ["hugo", "--quiet", "--source", str(folder), "--cacheDir", str(folder / "hugo-cache")],
            folder,
        ))  # fmt: skip
    return steps


def warm_page_cache(folder: Path) -> None:
    """Read every record file once, so that no tool pays for the first read from disk:
    a cron job rereading its folder every few minutes finds it in memory too."""
    for path in folder.iterdir():
        path.read_bytes()


def median(steps: list[Step]) -> Step:
    middle = sorted(steps, key=lambda step: step.seconds)[len(steps) // 2]
    worst = max(step.exit_code for step in steps)
    return Step(middle.name, middle.seconds, middle.cpu_seconds,
                max(step.peak_rss_mb for step in steps), worst,
                max(step.peak_pss_mb for step in steps))  # fmt: skip


def report(count: int, runs: dict[str, list[Step]]) -> str:
    steps = {name: median(found) for name, found in runs.items()}
    hugo = steps["hugo"].seconds
    lines = [
        f"N = {count:,} records, median of {len(runs['hugo'])} rounds",
        f"  {'step':<20}{'seconds':>9}{'x Hugo':>9}{'CPU s':>9}{'peak RSS':>11}{'PSS':>9}"
        "   each round (s)",
    ]
    for name, step in steps.items():
        flag = "" if step.exit_code == 0 else f"  (exit {step.exit_code})"
        if name == "cold, no clustering":
            flag += f"  (clustering adds {steps['cold'].seconds / step.seconds - 1:+.1%})"
        rounds = " ".join(f"{found.seconds:.2f}" for found in runs[name])
        lines.append(
            f"  {name:<20}{step.seconds:>9.2f}{step.seconds / hugo:>9.3f}"
            f"{step.cpu_seconds:>9.2f}{step.peak_rss_mb:>8.0f} MB{step.peak_pss_mb:>6.0f} MB"
            f"   {rounds}{flag}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size (median shown)")
    args = parser.parse_args()
    if shutil.which("hugo") is None:
        print("hugo is not installed (Debian: apt-get install -y hugo)", file=sys.stderr)
        return 2
    for count in args.sizes:
        print(report(count, run(count, args.repeat)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
