"""Benchmark: a million records on one machine (issue targets: every process together
under 2 GB in a cold build and under 1 GB in a rebuild; a no-change rebuild under 5 s,
a rebuild after 10 heat edits under 10 s).

    python benchmarks/bench_scale.py                    # 1 000 000 records
    python benchmarks/bench_scale.py --count 200000     # a smaller run
    python benchmarks/bench_scale.py --keep --rounds 3  # rebuilds again on the kept state

Generates the records of benchmarks/bench_build.py (same generator and seed) into
year/month folders under benchmarks/_work/scale-N/ (git-ignored; about 4 KB of disk a
record), then times as separate processes: a cold build, a rebuild with nothing
changed, a rebuild after 10 heat edits, one after 10 deletions and one after those 10
files come back (+10 files), each with the peak resident memory of the build and its
workers together (summed RSS, and summed PSS, which counts a page they share once: see
bench_build.py); and reports the state file's size per record after the first build,
and what each kind of state (namespace) takes of it. Takes long at a million records
(the cold build reads 4 GB of files).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import (
    HEAT,
    SEED,
    SITE_CONFIG,
    WORK,
    RecordMaker,
    Step,
    aggregator_build,
)


def prepare(count: int) -> Path:
    folder = WORK / f"scale-{count}"
    records = folder / "records"
    stamp = folder / "generated"
    if not stamp.exists():
        shutil.rmtree(folder, ignore_errors=True)
        maker = RecordMaker(SEED)
        made: set[Path] = set()
        for index in range(count):
            name, text = maker.record(index)
            target = records / name[:4] / name[5:7]  # YYYY/MM, from the file's date
            if target not in made:
                target.mkdir(parents=True, exist_ok=True)
                made.add(target)
            (target / name).write_text(text, encoding="utf-8")
        stamp.write_text(str(count))
    (folder / "config.toml").write_text(SITE_CONFIG, encoding="utf-8")
    return folder


def row(name: str, step: Step) -> str:
    flag = "" if step.exit_code == 0 else f"  (exit {step.exit_code})"
    return (f"  {name:<16}{step.seconds:>9.2f}{step.cpu_seconds:>9.2f}"
            f"{step.peak_rss_mb:>9.0f} MB{step.peak_pss_mb:>9.0f} MB{flag}")  # fmt: skip


def state_by_kind(state: Path, count: int) -> str:
    """The bytes of each namespace of the SQLite state (keys and values), a record."""
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT namespace, sum(length(key) + length(value)) FROM entries"
                          " GROUP BY namespace ORDER BY 2 DESC").fetchall()  # fmt: skip
    return ", ".join(f"{name} {size / count:.0f}" for name, size in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the state and output")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of no change and heat edits (other files each)")  # fmt: skip
    args = parser.parse_args()
    folder = prepare(args.count)
    files = sorted((folder / "records").rglob("*.md"))
    print(f"N = {args.count:,} records in {len({p.parent for p in files})} folders", flush=True)
    print(f"  {'step':<16}{'seconds':>9}{'CPU s':>9}{'peak RSS':>12}{'PSS':>12}", flush=True)
    state = folder / "state" / "state.db"
    if not args.keep:
        for name in ("state", "feeds"):
            shutil.rmtree(folder / name, ignore_errors=True)
    first = "cold" if not state.exists() else "first (kept)"
    print(row(first, aggregator_build(folder)), flush=True)
    size, kinds = state.stat().st_size, state_by_kind(state, args.count)
    rng = random.Random(SEED)
    for _ in range(args.rounds):
        print(row("no change", aggregator_build(folder)), flush=True)
        edited = rng.sample(files, 10)
        before = {path: path.read_text(encoding="utf-8") for path in edited}
        for path, text in before.items():
            path.write_text(HEAT.sub(f"heat: {rng.randint(0, 100)}", text, count=1),
                            encoding="utf-8")  # fmt: skip
        print(row("10 heat edits", aggregator_build(folder)), flush=True)
        for path, text in before.items():
            path.write_text(text, encoding="utf-8")
        aggregator_build(folder)  # back to the records as generated
    aside = folder / "aside"
    aside.mkdir(exist_ok=True)
    gone = rng.sample([path for path in files if path not in before], 10)
    for path in gone:
        path.rename(aside / path.name)
    print(row("10 deletions", aggregator_build(folder)), flush=True)
    for path in gone:
        (aside / path.name).rename(path)
    print(row("+10 files", aggregator_build(folder)), flush=True)  # the same 10, back
    print(f"  state file: {size / 1e6:.0f} MB after the cold build, "
          f"{size / args.count:.0f} B a record", flush=True)
    print(f"  state by kind, B a record: {kinds}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
