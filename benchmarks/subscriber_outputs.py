"""Time the subscriber outputs and the preview server.

    python benchmarks/subscriber_outputs.py [RECORDS_DIR]

Prints the median time to render the JSON Feeds, HTML pages and OPML for one build, and
how many requests per second the preview server answers for a full feed (200) and for
a conditional request of an unchanged feed (304). Defaults to the bundled examples.
"""

from __future__ import annotations

import http.client
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from aggregator.collect import collect
from aggregator.config import load_config
from aggregator.merge import merge_duplicates
from aggregator.pipeline import build
from aggregator.rank import plan_feeds
from aggregator.render.html import render_pages
from aggregator.render.jsonfeed import render_json_feed
from aggregator.render.opml import render_opml
from aggregator.render.paths import FeedSummary
from aggregator.serve import PreviewServer

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 15
REQUESTS = 500


def median_ms(action: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def requests_per_second(port: int, path: str, headers: dict[str, str]) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    for _ in range(REQUESTS):
        connection.request("GET", path, headers=headers)
        connection.getresponse().read()
        connection.close()
    return REQUESTS / (time.perf_counter() - started)


def main() -> None:
    records = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "records"
    folder = Path(tempfile.mkdtemp(prefix="aggregator-bench-"))
    (folder / "config.toml").write_text(
        f'[site]\ntitle = "Bench"\nbase_url = "https://bench.example/"\noutput_dir = "out"\n'
        f"[[sources]]\npath = {str(records.resolve())!r}\n",
        encoding="utf-8",
    )
    config = load_config(folder / "config.toml")
    stories, _ = merge_duplicates(collect(config).records)
    plans, topics = plan_feeds(stories, config.ranking, config.feeds.max_items)
    names = {key: topic.name for key, topic in topics.items()}
    print(f"{records}: {len(stories)} stories, {len(plans)} feeds")
    json_ms = median_ms(lambda: [render_json_feed(config.site, p, names) for p in plans])
    print(f"  JSON Feeds {json_ms:7.1f} ms")
    print(f"  HTML pages {median_ms(lambda: render_pages(config.site, plans)):7.1f} ms")
    feeds = [FeedSummary.of(plan) for plan in plans]
    print(f"  OPML       {median_ms(lambda: render_opml(config.site, feeds)):7.1f} ms")
    print(f"  whole build, unchanged output {median_ms(lambda: build(config)):7.1f} ms")

    server = PreviewServer(config.site.output_dir, 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", "/rss.xml")
    response = connection.getresponse()
    response.read()
    etag = response.getheader("ETag") or ""
    connection.close()
    print(f"  preview 200 rss.xml        {requests_per_second(port, '/rss.xml', {}):7.0f} req/s")
    gzip = {"Accept-Encoding": "gzip"}
    print(f"  preview 200 rss.xml gzip   {requests_per_second(port, '/rss.xml', gzip):7.0f} req/s")
    fresh = {"If-None-Match": etag}
    print(f"  preview 304 rss.xml        {requests_per_second(port, '/rss.xml', fresh):7.0f} req/s")
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
