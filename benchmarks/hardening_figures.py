"""Figures for the hardening work: how fast bombs fail, what the YAML caps cost, what a
record with 5 000 topics and a slow-drip server cost a build, what a full disk at each
write leaves behind, and what happens when real builds are killed at random moments.

    python benchmarks/hardening_figures.py [--kills N] [--records N]

Never run in tests or CI (it measures time).
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.limits import LimitExceeded  # noqa: E402
from aggregator.parse.documents import load_yaml  # noqa: E402
from tests.factories import (  # noqa: E402
    CORPUS,
    classify_after_kill,
    tree_bytes,
    write_config,
    write_record_set,
)
from tests.test_hardening_limits import alias_chain, billion_laughs, merge_key_bomb  # noqa: E402


def best_of(function, runs: int = 200) -> float:
    """Median seconds of `function()` over `runs` runs."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bomb_figures() -> None:
    for name, text, expanded in [
        ("billion laughs (10 levels x 10)", billion_laughs(), "10^10 strings"),
        ("merge-key bomb (30 levels x 2)", merge_key_bomb(), "2^30 keys"),
        ("alias chain (40 levels x 2)", alias_chain(), "2^40 nodes"),
    ]:

        def reject(text: str = text) -> None:
            try:
                load_yaml(text)
            except LimitExceeded:
                return
            raise AssertionError("not rejected")

        print(f"{name}: {len(text)} bytes, {expanded} if expanded; "
              f"rejected in {best_of(reject) * 1e6:.0f} µs (median of 200)")  # fmt: skip


def front_matters() -> list[str]:
    texts = []
    for path in sorted(CORPUS.rglob("*.md")):
        match = re.match(r"---\r?\n(.*?)\r?\n---", path.read_text("utf-8-sig"), re.S)
        if match:
            texts.append(match.group(1))
    return texts


def loader_figures() -> None:
    texts = front_matters()
    if not texts:
        print("corpus not found; loader comparison skipped")
        return
    with_star = [t for t in texts if "*" in t]

    def plain() -> None:
        for text in texts:
            yaml.load(text, Loader=yaml.CSafeLoader)

    def limited() -> None:
        for text in texts:
            load_yaml(text)

    def limited_composer() -> None:  # force the Python composer path on every document
        for text in texts:
            load_yaml(text + "\n# *")

    n = len(texts)
    print(f"corpus front matter ({n} docs, {len(with_star)} contain '*'), µs per document:")
    print(f"  CSafeLoader (no caps)          {best_of(plain, 20) / n * 1e6:7.0f}")
    print(f"  load_yaml (caps; as used)      {best_of(limited, 20) / n * 1e6:7.0f}")
    print(f"  load_yaml, composer path only  {best_of(limited_composer, 20) / n * 1e6:7.0f}")


def kill_figures(kills: int, records: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        source = tmp / "records"
        write_record_set(source, records, records // 6)
        config = write_config(tmp, [source])
        command = [sys.executable, "-m", "aggregator", "build", "--config", str(config), "-q"]
        subprocess.run(command, check=True)
        old = tree_bytes(tmp / "out")
        for path in source.iterdir():
            path.unlink()
        write_record_set(source, records, records // 6, suffix=" (updated)")
        started = time.monotonic()
        subprocess.run([*command, "--output", str(tmp / "new")], check=True)
        duration = time.monotonic() - started
        new = tree_bytes(tmp / "new")
        rng = random.Random()
        phases: dict[str, int] = {"before": 0, "during": 0, "after": 0}
        broken_total = temps_total = 0
        for _ in range(kills):
            for name, data in old.items():  # back to the old feeds
                (tmp / "out" / name).write_bytes(data)
            for temp in (tmp / "out").rglob("*.aggregator-tmp"):
                temp.unlink()
            process = subprocess.Popen(command)
            time.sleep(rng.uniform(0, duration))
            process.send_signal(signal.SIGKILL)
            process.wait()
            phase, temps, broken = classify_after_kill(tmp / "out", old, new)
            phases[phase] += 1
            broken_total += len(broken)
            temps_total += len(temps)
        subprocess.run(command, check=True)
        recovered = tree_bytes(tmp / "out") == new
        print(f"kill test: {len(new)} feed files, full build {duration:.2f} s, {kills} SIGKILLs at "
              f"uniform random moments: {phases}; broken or partial feeds: {broken_total}; "
              f"temp files left: {temps_total} (removed by the next run); "
              f"next run correct: {recovered}")  # fmt: skip


def topics_figure() -> None:
    """One record with 5 000 topics: the whole build (default [limits]) and one feed
    rendered with all 5 000 categories (linear now; it was O(n^2) per entry)."""
    from dataclasses import replace

    from aggregator.config import SiteConfig, load_config
    from aggregator.pipeline import build
    from aggregator.rank import FeedPlan
    from aggregator.render.feeds import render_feeds
    from tests.factories import BASE_URL, fields, make_record, write_record

    topics = [f"Topic {n}" for n in range(5_000)]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        write_record(tmp / "records", "many.md", fields(1, topics=topics))
        config = load_config(write_config(tmp, ["records"]))
        started = time.perf_counter()
        report = build(config)
        seconds = time.perf_counter() - started
        record = replace(make_record(1), topics=tuple(topics))
        site = SiteConfig("T", BASE_URL, tmp, "d", "en", "a")
        started = time.perf_counter()
        render_feeds(site, FeedPlan(topic=None, items=(record,), total=1), {})
        render = time.perf_counter() - started
    print(f"5 000 topics in one record: build {seconds:.2f} s, {report.files} files "
          f"(max_topics_per_record 50); one feed with all 5 000 categories rendered in "
          f"{render:.2f} s")  # fmt: skip


def drip_figure(good: int = 20) -> None:
    """A build of `good` sources and one that drips its headers a byte each 0.5 s."""
    from aggregator.cli import main as cli_main
    from tests.conftest import drip_server, running_server
    from tests.factories import fields, seed_page, url_source

    settings = ("[fetch]\nallow_private_addresses = true\nrequest_deadline = 2\n"
                "source_deadline = 5\nbuild_deadline = 60\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder, running_server() as server, \
            drip_server(0.5) as drip:  # fmt: skip
        sources = ""
        for n in range(good):
            path = f"/good/{n}.json"
            server.expect_request(path).respond_with_data(
                seed_page([fields(n * 10 + i) for i in range(5)],
                          1, None), content_type="application/json")  # fmt: skip
            sources += url_source(server.url_for(path))
        sources += url_source(drip.url())
        config = write_config(Path(folder), extra=sources + settings)
        started = time.perf_counter()
        code = cli_main(["build", "--config", str(config), "-q"])
        seconds = time.perf_counter() - started
    print(f"{good} good sources + 1 slow-drip source (request_deadline 2 s, source_deadline "
          f"5 s, 2 retries): build {seconds:.2f} s, exit {code}")  # fmt: skip


def enospc_figure() -> None:
    """ENOSPC injected at every write position of a rebuild: exit codes and links from
    pages and the OPML list to feeds that are missing."""
    import contextlib
    import io

    from aggregator.cli import main as cli_main
    from tests.factories import failing_writes, fields, missing_feed_links, write_record

    def rebuild(site: Path) -> Path:
        for n, topic in enumerate(["A", "B"], 1):
            write_record(site / "records", f"{n}.md", fields(n, topics=[topic, "All"]))
        config = write_config(site, ["records"])
        cli_main(["build", "--config", str(config), "-q"])
        write_record(site / "records", "3.md", fields(3, topics=["C", "All"]))
        return config

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        probe = rebuild(tmp / "probe")
        with failing_writes(-1) as count:
            cli_main(["build", "--config", str(probe), "-q"])
        codes: dict[int, int] = {}
        dangling = 0
        for at in range(count[0]):
            config = rebuild(tmp / f"at-{at}")
            with failing_writes(at), contextlib.redirect_stderr(io.StringIO()):
                code = cli_main(["build", "--config", str(config), "-q"])
            codes[code] = codes.get(code, 0) + 1
            dangling += len(missing_feed_links(tmp / f"at-{at}" / "out"))
    print(f"ENOSPC at each of {count[0]} write positions: exit codes {codes}; "
          f"OPML or page links to missing feeds: {dangling}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--records", type=int, default=1200)
    args = parser.parse_args()
    bomb_figures()
    loader_figures()
    topics_figure()
    drip_figure()
    enospc_figure()
    kill_figures(args.kills, args.records)


if __name__ == "__main__":
    main()
