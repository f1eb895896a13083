"""Test helpers, one function per job: paths, records, configs, documents a server
serves, builds, snapshots, and reading what a build wrote back strictly. Fixtures and
servers live in conftest.py."""

from __future__ import annotations

import errno
import html
import json
import os
import re
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.etree
import lxml.html
import yaml

from aggregator.config import DEFAULT_TRACKING_PARAMS, Config, FetchConfig, load_config
from aggregator.model import Record
from aggregator.pipeline import build
from aggregator.report import BuildReport
from aggregator.state.keys import Listing, listing
from aggregator.state.snapshot import Snapshot
from aggregator.validate import RecordDefaults, record_from_mapping

# --- paths --------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "records"
# The shared corpus sits beside the repository (CI: a copy of shared/ beside the clone);
# a git worktree nested deeper finds it in the nearest ancestor that has one.
CORPUS = next(
    (
        folder / "shared" / "corpus"
        for folder in ROOT.parents
        if (folder / "shared" / "corpus").is_dir()
    ),
    ROOT.parent / "shared" / "corpus",
)

# --- records ------------------------------------------------------------------------------

DEFAULTS = RecordDefaults(50.0, 50.0, DEFAULT_TRACKING_PARAMS)


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


def markdown(data: dict[str, Any], body: str = "") -> str:
    front = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n{body}"


def write_record(folder: Path, name: str, data: dict[str, Any], body: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(markdown(data, body), encoding="utf-8")
    return path


def write_record_set(folder: Path, count: int, topics: int, suffix: str = "") -> None:
    """`count` one-record JSON files over `topics` topics (and 13 groups); `suffix`
    changes every title."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        data = fields(
            index,
            title=f"Story number {index}{suffix}",
            topics=[f"Topic {index % topics}", f"Group {index % 13}"],
        )
        (folder / f"{index:05d}.json").write_text(json.dumps(data), encoding="utf-8")


# --- configs ------------------------------------------------------------------------------

BASE_URL = "https://feeds.example.org/news/"
# Fast, test-sized fetch settings: tiny backoff, short timeouts; the test servers
# listen on 127.0.0.1, which a real build refuses by default.
FAST_FETCH = """
[fetch]
allow_private_addresses = true
timeout = 2.0
retries = 1
backoff = 0.01
max_retry_after = 0.05
concurrency = 4
"""


def local_fetch(**settings: Any) -> FetchConfig:
    """Fetch settings for the test servers, which listen on 127.0.0.1: a real build
    refuses loopback addresses unless `[fetch] allow_private_addresses` says so."""
    return FetchConfig(allow_private_addresses=True, **settings)


def write_config(
    folder: Path,
    sources: Iterable[str | Path] = (),
    extra: str = "",
    *,
    site: str = "",
    title: str = "Test News",
    base_url: str = BASE_URL,
    output: str = "out",
) -> Path:
    """A config.toml in `folder`: the test site's `[site]` table (`site` adds keys to it),
    one `[[sources]]` table per `path` in `sources` (relative to the file), then `extra`
    (more sources, `url_source` tables, any other tables)."""
    site_table = f"[site]\ntitle = {json.dumps(title)}\nbase_url = {json.dumps(base_url)}\n"
    site_table += f"output_dir = {json.dumps(output)}\n" + (f"{site}\n" if site else "")
    tables = "".join(f"\n[[sources]]\npath = {json.dumps(str(source))}\n" for source in sources)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(f"{site_table}{tables}{extra}\n", encoding="utf-8")
    return path


def url_source(url: str, **settings: Any) -> str:
    """A `[[sources]]` table for a `url` source, with its settings (for `extra`)."""
    lines = [f'[[sources]]\nurl = "{url}"']
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


# --- documents a server serves ------------------------------------------------------------


def seed_page(items: list[dict], page: int, next_page: str | int | None) -> bytes:
    """A page of the seed system's JSON API."""
    body = {"title": "News", "path": "/news/", "page": page, "value": items, "nextPage": next_page}
    return json.dumps(body, indent=2).encode()


def rss_feed(
    items: list[dict], *, title: str = "Example Feed", link: str = "https://feed.example.net/"
) -> bytes:
    """An RSS 2.0 feed of record mappings (`fields`); an `image` key becomes media:content."""
    entries = []
    for item in items:
        categories = "".join(f"<category>{t}</category>" for t in item.get("topics", []))
        image = item.get("image")
        media = (
            f'<media:content url="{image}" medium="image" width="640" height="360"/>'
            if image
            else ""
        )
        published = item["publishedDateTime"].replace("Z", "+00:00")
        pub_date = format_datetime(datetime.fromisoformat(published))
        entries.append(
            f"<item><title>{item['title']}</title><link>{item['webUrl']}</link>"
            f"<guid>{item['webUrl']}</guid><description>{item.get('excerpt', '')}</description>"
            f"<pubDate>{pub_date}</pubDate>{categories}{media}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        f"<title>{title}</title><link>{link}</link><description>d</description>"
        + "".join(entries)
        + "</channel></rss>"
    ).encode()


# --- builds -------------------------------------------------------------------------------


def build_site(
    folder: Path, records: Path = EXAMPLES, site: str = ""
) -> tuple[Config, BuildReport]:
    """Build `records` into `folder`/out with the test site's config."""
    config = load_config(write_config(folder, [records], site=site))
    return config, build(config)


def full_build_elsewhere(config: Config, folder: Path) -> BuildReport:
    """A build from scratch into `folder`, with a state file of its own."""
    elsewhere = replace(config, build=replace(config.build, state_path=folder.with_suffix(".db")))
    return build(elsewhere, folder, full=True)


# --- snapshots ----------------------------------------------------------------------------


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


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root`: its bytes, keyed by relative path."""
    return {name: data for name, (data, _, _) in snapshot(root).items()}


def listings_of(stamps: dict[str, tuple[int, int]]) -> dict[str, Listing]:
    """Files with these (size, mtime_ns) stamps, by parse-cache key, as FoundFiles lists
    them: by folder key, each folder's files in the order given."""
    rows: dict[str, list[tuple[str, int, int]]] = {}
    for key, (size, mtime) in stamps.items():
        folder, _, name = key.rpartition(os.sep)
        rows.setdefault(folder + os.sep, []).append((name, size, mtime))
    return {folder: listing([r[0] for r in found], [r[1] for r in found], [r[2] for r in found])
            for folder, found in rows.items()}  # fmt: skip


def build_snapshot(stamps: dict[str, tuple[int, int]], settings: bytes = b"settings") -> Snapshot:
    """What the state remembers of a last build that read files with these
    (size, mtime_ns) stamps, by parse-cache key."""
    counts = dict.fromkeys(Snapshot.COUNTS, 0)
    return Snapshot(settings, listings_of(stamps), counts, ())


OLD_NS = 1_000_000_000 * 10**9  # 2001-09-09: any rewrite after this shows in st_mtime_ns


def age(root: Path) -> None:
    """Backdate every file under `root`, so a rewrite is visible whatever the clock's grain."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(OLD_NS, OLD_NS))


TEMP_SUFFIX = ".aggregator-tmp"


def classify_after_kill(
    output: Path, old: dict[str, bytes], new: dict[str, bytes]
) -> tuple[str, list[str], list[str]]:
    """Check every file left by a killed build: (phase, temp files left, broken files).

    A feed file is fine when it holds exactly the old or the new bytes (and so parses).
    `phase` says where the kill landed: "before" (all old), "during" (a mix) or
    "after" (all new).
    """
    temps: list[str] = []
    broken: list[str] = []
    olds = news = 0
    current = tree_bytes(output)
    for name, data in current.items():
        if Path(name).name.endswith(TEMP_SUFFIX):
            temps.append(name)
            continue
        if name.endswith(".xml"):
            try:
                lxml.etree.fromstring(data)
            except lxml.etree.XMLSyntaxError as exc:
                broken.append(f"{name}: not XML ({exc})")
                continue
        if data == new.get(name):
            news += 1
        elif data == old.get(name):
            olds += 1
        else:
            broken.append(f"{name}: neither the old nor the new bytes")
    missing = sorted(set(old) - set(current))
    broken.extend(f"{name}: missing" for name in missing)
    phase = "before" if news == 0 else "after" if olds == 0 and news == len(new) else "during"
    return phase, temps, broken


# --- reading what a build wrote ----------------------------------------------------------

FEED_NAMES = ("rss.xml", "atom.xml")


def feed_paths(root: Path) -> list[Path]:
    """The RSS and Atom files under `root` (other outputs may sit beside them)."""
    return sorted(p for p in root.rglob("*.xml") if p.name in FEED_NAMES)


def rss_files(output: Path) -> list[Path]:
    """The RSS files under `output`: the front feed and one per topic."""
    return sorted(output.rglob("rss.xml"))


def xml_files(output: Path) -> list[Path]:
    """Every XML file under `output`: the feeds, their archives."""
    return sorted(p for p in output.rglob("*.xml") if p.is_file())


def public_url(output: Path, path: Path, base_url: str = BASE_URL) -> str:
    """The address a subscriber uses for `path`, a file under `output`."""
    return base_url + path.relative_to(output).as_posix()


def feed_links(path: Path) -> set[str]:
    """Every item link in a written RSS file, read back with feedparser."""
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {entry.link for entry in parsed.entries}


def feed_entries(path: Path) -> list[Any]:
    """Every item of a written feed, read back with feedparser."""
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return list(parsed.entries)


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


ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
MEDIA = "{http://search.yahoo.com/mrss/}content"
UNSAFE_ELEMENTS = frozenset(
    {"script", "style", "iframe", "frame", "object", "embed", "form", "base", "meta", "link",
     "svg", "math", "applet", "input", "button", "textarea"}
)  # fmt: skip


def is_safe_url(value: str) -> bool:
    return value.startswith(("https://", "http://")) and not any(
        ch.isspace() or ch in "<>\"'`" for ch in value
    )


def html_problems(fragment: str) -> list[str]:
    """What is unsafe in an HTML fragment: forbidden elements, handlers, bad URLs."""
    if not fragment.strip():
        return []
    problems = []
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions carry no behaviour
        if element.tag.lower() in UNSAFE_ELEMENTS:
            problems.append(f"<{element.tag}> element")
        for name, value in element.attrib.items():
            if name.lower().startswith("on") or name.lower() in ("style", "srcdoc", "formaction"):
                problems.append(f"{name} attribute on <{element.tag}>")
            is_url = name.lower() in ("href", "src", "cite", "action", "poster", "background")
            if is_url and not is_safe_url(value):
                problems.append(f"{name}={value!r} on <{element.tag}>")
    return problems


def _html_values(root: lxml.etree._Element) -> Iterator[tuple[str, str]]:
    """(where, HTML text) for every element that carries HTML in RSS or Atom."""
    for element in root.iter("description", CONTENT, f"{ATOM}summary", f"{ATOM}content"):
        is_atom = element.tag.startswith(ATOM)
        if is_atom and element.get("type", "text") != "html":
            continue
        yield element.tag, element.text or ""


def _urls(root: lxml.etree._Element) -> Iterator[tuple[str, str]]:
    for element in root.iter("link", "guid", "comments", f"{ATOM}id", f"{ATOM}uri"):
        if element.text and element.text.strip() and "link" in str(element.tag):
            yield str(element.tag), element.text.strip()
    for element in root.iter(f"{ATOM}link", MEDIA, "enclosure"):
        for attribute in ("href", "url"):
            if element.get(attribute) is not None:
                yield f"{element.tag}@{attribute}", element.get(attribute)


def feed_problems(data: bytes) -> list[str]:
    """Everything wrong with one feed document; [] means well-formed, bozo-free and safe."""
    problems: list[str] = []
    try:
        root = lxml.etree.fromstring(data, parser=lxml.etree.XMLParser(resolve_entities=False))
    except lxml.etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    parsed = feedparser.parse(data)
    if parsed.bozo:
        problems.append(f"feedparser bozo: {parsed.bozo_exception!r}")
    for where, fragment in _html_values(root):
        problems.extend(f"{where}: {p}" for p in html_problems(fragment))
    for where, url in _urls(root):
        if not is_safe_url(url):
            problems.append(f"{where}: unsafe link {url!r}")
    for element in root.iter("title", f"{ATOM}title", "category", f"{ATOM}name"):
        text = element.text or element.get("term") or ""
        if "<" in text and html_problems(text):
            problems.append(f"{element.tag}: markup in plain text {text!r}")
    for element in root.iter(f"{ATOM}category"):
        term = element.get("term") or ""
        if "<" in term and html_problems(term):
            problems.append(f"category term with markup {term!r}")
    return problems


def all_feed_problems(output: Path) -> dict[str, list[str]]:
    """`feed_problems` of every XML file under `output`, by relative path; {} when clean."""
    found = {}
    for path in xml_files(output):
        problems = feed_problems(path.read_bytes())
        if problems:
            found[str(path.relative_to(output))] = problems
    return found


# --- faults and real readers -------------------------------------------------------------


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


# --- images -------------------------------------------------------------------------------


def png_bytes(width: int, height: int, seed: int) -> bytes:
    """A real PNG: a soft diagonal gradient whose colours depend on `seed`."""
    start = (40 + seed % 150, 90 + (seed // 7) % 120, 150 + (seed // 49) % 100)
    end = (230, 200 - seed % 90, 120 + (seed // 3) % 120)
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            t = (x / width + y / height) / 2
            row += bytes(int(a + (b - a) * t) for a, b in zip(start, end, strict=True))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium's screenshots are):
    width, height, one bytes row per line, and bytes per pixel."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    size = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * size
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - size] if x >= size else 0
            up = previous[x]
            corner = previous[x - size] if x >= size else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                           (abs(guess - corner), 2, corner))[2]  # fmt: skip
                line[x] = (line[x] + near) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows, size


def s3_site(endpoint: str, url: str = "s3://news/site", extra: str = "") -> str:
    """`[site]` lines that publish to the bucket at `url` on the S3 server at `endpoint`."""
    return (f'output_url = "{url}"\n'
            f'output_options = {{ endpoint_url = "{endpoint}" }}\n{extra}')  # fmt: skip
