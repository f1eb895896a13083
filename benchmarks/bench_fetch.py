"""Benchmark remote sources: a cold build, then a build where every source answers 304.

200 sources on a local server (127.0.0.1), half seed-style JSON pages and half RSS
feeds, 50 items each. Prints both build times and how many bodies the second parsed.
Target: the 304 build parses no body and takes under a fifth of the cold build's time.

    python benchmarks/bench_fetch.py [--sources 200] [--items 50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path

from aggregator.config import load_config
from aggregator.pipeline import build
from aggregator.report import BuildReport

TOPICS = ("AI", "Cloud", "Security", "Data", "Robotics", "Chips", "Energy", "Health")
START = datetime(2024, 3, 1, tzinfo=UTC)


def _item(source: int, n: int) -> dict[str, object]:
    published = START + timedelta(minutes=17 * (source * 50 + n))
    return {
        "title": f"Source {source} story {n}: something happened",
        "webUrl": f"https://site{source}.example.com/news/{n}",
        "publishedDateTime": published.isoformat(),
        "excerpt": f"A summary of story {n} from source {source}. " * 3,
        "topics": [TOPICS[(source + n) % len(TOPICS)], TOPICS[n % len(TOPICS)]],
        "heat": (source * 7 + n * 13) % 100,
        "quality": (source * 11 + n * 3) % 100,
        "provider": {"name": f"Site {source}", "domain": f"site{source}.example.com"},
    }


def seed_page(source: int, items: int) -> bytes:
    value = [_item(source, n) for n in range(items)]
    page = {"title": "News", "path": "/news/", "page": 1, "value": value, "nextPage": None}
    return json.dumps(page, indent=2).encode()


def rss_feed(source: int, items: int) -> bytes:
    entries = []
    for n in range(items):
        item = _item(source, n)
        categories = "".join(f"<category>{t}</category>" for t in item["topics"])  # type: ignore[union-attr]
        published = datetime.fromisoformat(str(item["publishedDateTime"]))
        entries.append(
            f"<item><title>{item['title']}</title><link>{item['webUrl']}</link>"
            f"<guid>{item['webUrl']}</guid><description>{item['excerpt']}</description>"
            f"<pubDate>{format_datetime(published)}</pubDate>{categories}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Site {source}</title><link>https://site{source}.example.com/</link>"
        f"<description>Feed {source}</description>" + "".join(entries) + "</channel></rss>"
    ).encode()


def documents(sources: int, items: int) -> dict[str, tuple[bytes, str, str]]:
    """Path -> (body, content type, ETag)."""
    served = {}
    for source in range(sources):
        if source % 2:
            path, body, kind = (
                f"/feeds/{source}/rss.xml",
                rss_feed(source, items),
                "application/rss+xml",
            )
        else:
            path, body, kind = (
                f"/api/{source}/index.json",
                seed_page(source, items),
                "application/json",
            )
        served[path] = (body, kind, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return served


def _make_server(docs: dict[str, tuple[bytes, str, str]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def do_GET(self) -> None:
            body, kind, etag = docs[self.path]
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def _serve_forever(sources: int, items: int, port_out: Connection) -> None:
    server = _make_server(documents(sources, items))
    port_out.send(server.server_address[1])
    server.serve_forever()


@contextmanager
def serve(sources: int, items: int) -> Iterator[str]:
    """The documents on 127.0.0.1, served by another process, as a real server would be."""
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_serve_forever, args=(sources, items, send))
    process.start()
    try:
        if not receive.poll(30):
            raise RuntimeError("benchmark server did not start")
        yield f"http://127.0.0.1:{receive.recv()}"
    finally:
        process.terminate()
        process.join()


@dataclass(frozen=True, slots=True)
class Timing:
    seconds: float
    cpu: float
    report: BuildReport


def timed_build(config_path: Path) -> Timing:
    started, cpu = time.perf_counter(), time.process_time()
    report = build(load_config(config_path))
    return Timing(time.perf_counter() - started, time.process_time() - cpu, report)


def write_config(root: Path, base: str, paths: list[str]) -> Path:
    sources = "".join(f'[[sources]]\nurl = "{base}{path}"\n' for path in paths)
    config = root / "config.toml"
    config.write_text(
        '[site]\ntitle = "Bench"\nbase_url = "https://bench.example.org/"\n'
        f'output_dir = "out"\n\n{sources}\n[fetch]\nconcurrency = 8\n'
        "allow_private_addresses = true\n",  # the benchmark's server is on 127.0.0.1
        encoding="utf-8",
    )
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="cold+304 pairs; best is kept")
    args = parser.parse_args()
    paths = list(documents(args.sources, args.items))
    pairs: list[tuple[Timing, Timing]] = []
    with serve(args.sources, args.items) as base:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:  # a fresh state store: really cold
                config = write_config(Path(folder), base, paths)
                pairs.append((timed_build(config), timed_build(config)))
    print(f"sources: {args.sources} ({args.items} items each, half JSON pages, half RSS)")
    for label, index in (("cold build", 0), ("304 build ", 1)):
        runs = [pair[index] for pair in pairs]
        best = min(runs, key=lambda t: t.seconds)
        fetch = best.report.fetch
        print(f"{label}: {best.seconds:.3f} s wall (best of {len(runs)}: "
              f"{', '.join(f'{t.seconds:.3f}' for t in runs)}), {best.cpu:.3f} s CPU, "
              f"{best.report.records} records, {fetch.bodies_parsed} bodies parsed, "
              f"{fetch.not_modified} not modified")  # fmt: skip
    cold = min(pair[0].seconds for pair in pairs)
    warm = min(pair[1].seconds for pair in pairs)
    parsed = max(pair[1].report.fetch.bodies_parsed for pair in pairs)
    ok = parsed == 0 and warm / cold < 0.2
    print(f"304 build / cold build = {warm / cold:.3f} (target < 0.2); "
          f"bodies parsed in the 304 builds: {parsed}: {'OK' if ok else 'MISSED'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
