"""Small builders for tests: record files, Records, config files, build snapshots,
folder snapshots and builds from scratch."""

from __future__ import annotations

import errno
import html
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import yaml

from aggregator.build import BuildReport, build
from aggregator.cache import Snapshot, file_stamp
from aggregator.config import DEFAULT_TRACKING_PARAMS, Config, FetchConfig
from aggregator.records import Record, RecordDefaults, record_from_mapping

DEFAULTS = RecordDefaults(50.0, 50.0, DEFAULT_TRACKING_PARAMS)
BASE_URL = "https://feeds.example.org/news/"


def fields(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A realistic, valid record mapping; `n` makes title and link unique."""
    data: dict[str, Any] = {
        "category": "news",
        "title": f"Story number {n}",
        "excerpt": f"What happened in story {n}.",
        "publishedDateTime": f"2026-11-{1 + n % 28:02d}T08:00:00Z",
        "webUrl": f"https://www.outlet{n}.example/2026/11/story-{n}/",
        "type": "article",
        "quality": 50,
        "heat": 50,
        "published": True,
        "provider": {"name": f"Outlet {n}", "domain": f"outlet{n}.example"},
        "topics": ["AI"],
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def make_record(n: int = 1, **overrides: Any) -> Record:
    """A Record made the way the pipeline makes one (through validation)."""
    return record_from_mapping(fields(n, **overrides), DEFAULTS, origin=f"record-{n}.md", line=1)


def local_fetch(**settings: Any) -> FetchConfig:
    """Fetch settings for the test servers, which listen on 127.0.0.1: a real build
    refuses loopback addresses unless `[fetch] allow_private_addresses` says so."""
    return FetchConfig(allow_private_addresses=True, **settings)


def markdown(data: dict[str, Any], body: str = "") -> str:
    front = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n{body}"


def write_record(folder: Path, name: str, data: dict[str, Any], body: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(markdown(data, body), encoding="utf-8")
    return path


def write_config(folder: Path, sources: list[str], extra: str = "", output: str = "out") -> Path:
    """A config.toml in `folder`; `sources` are `path` values (relative to the file)."""
    tables = "".join(f'\n[[sources]]\npath = "{source}"\n' for source in sources)
    return write_config_toml(folder, tables + extra, output)


def write_config_toml(folder: Path, tables: str, output: str = "out") -> Path:
    """A config.toml in `folder`: the test site's `[site]` table, then `tables`."""
    path = folder / "config.toml"
    path.write_text(
        f'[site]\ntitle = "Test News"\nbase_url = "{BASE_URL}"\noutput_dir = "{output}"\n'
        f"{tables}\n",
        encoding="utf-8",
    )
    return path


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under `root`: (bytes, mtime in ns, inode), keyed by relative path."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            info = os.stat(path)
            result[path.relative_to(root).as_posix()] = (
                path.read_bytes(),
                info.st_mtime_ns,
                info.st_ino,
            )
    return result


FEED_NAMES = ("rss.xml", "atom.xml")


def feed_paths(root: Path) -> list[Path]:
    """The RSS and Atom files under `root` (other outputs may sit beside them)."""
    return sorted(p for p in root.rglob("*.xml") if p.name in FEED_NAMES)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {name: data for name, (data, _, _) in snapshot(root).items()}


def full_build_elsewhere(config: Config, folder: Path) -> BuildReport:
    """A build from scratch into `folder`, with a state file of its own."""
    elsewhere = replace(config, build=replace(config.build, state_path=folder.with_suffix(".db")))
    return build(elsewhere, folder, full=True)


def build_snapshot(stamps: dict[str, tuple[int, int]], settings: bytes = b"settings") -> Snapshot:
    """What the state remembers of a last build that read files with these
    (size, mtime_ns) stamps, by parse-cache key."""
    counts = dict.fromkeys(Snapshot.COUNTS, 0)
    packed = {key: file_stamp(*stamp) for key, stamp in stamps.items()}
    return Snapshot(settings, packed, counts, ())


OLD_NS = 1_000_000_000 * 10**9  # 2001-09-09: any rewrite after this shows in st_mtime_ns


def age(root: Path) -> None:
    """Backdate every file under `root`, so a rewrite is visible whatever the clock's grain."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(OLD_NS, OLD_NS))


FEED_LINK = re.compile(r'(?:href|xmlUrl)="([^"]+?(?:rss\.xml|atom\.xml|feed\.json|feed\.xsl))"')


def missing_feed_links(root: Path, base_url: str = BASE_URL) -> list[str]:
    """Links from the pages and the OPML list under `root` (and feeds to their
    stylesheet) to feed files that are not there: what a reader would subscribe to, 404."""
    missing = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".html", ".opml", ".xml") or not path.is_file():
            continue
        here = urljoin(base_url, path.relative_to(root).as_posix())
        for link in FEED_LINK.findall(path.read_text(encoding="utf-8")):
            target = urljoin(here, html.unescape(link))
            if target.startswith(base_url) and not (root / target[len(base_url) :]).is_file():
                missing.append(f"{path.relative_to(root)} -> {target}")
    return missing


@contextmanager
def failing_writes(at: int, error: int = errno.ENOSPC) -> Iterator[list[int]]:
    """The `at`-th file written (counting from 0, by its fsync) fails with `error`, as a
    full disk fails a write; yields the running count of writes."""
    real = os.fsync
    count = [0]
    lock = threading.Lock()

    def fsync(fd: int) -> None:
        with lock:
            position = count[0]
            count[0] += 1
        if position == at:
            raise OSError(error, os.strerror(error))
        real(fd)

    os.fsync = fsync
    try:
        yield count
    finally:
        os.fsync = real


def newsboat_reload(newsboat: str, url: str, home: Path) -> None:
    """Have newsboat (a real reader) fetch `url` into `home`/cache.db: one urls file,
    config and cache per feed (newsboat keeps one copy of an item per guid across feeds)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "urls").write_text(url + "\n", encoding="utf-8")
    (home / "config").write_text("max-items 0\nreload-threads 1\n", encoding="utf-8")
    result = subprocess.run(
        [newsboat, "-u", str(home / "urls"), "-c", str(home / "cache.db"),
         "-C", str(home / "config"), "-x", "reload"],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def s3_site(endpoint: str, url: str = "s3://news/site", extra: str = "") -> str:
    """`[site]` lines that publish to the bucket at `url` on the S3 server at `endpoint`."""
    return (f'output_url = "{url}"\n'
            f'output_options = {{ endpoint_url = "{endpoint}" }}\n{extra}')  # fmt: skip
