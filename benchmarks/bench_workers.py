"""Benchmark fetch workers: 500 sources on 127.0.0.1, 1, 2 and 4 worker processes.

A threaded server in its own process answers each of N sources (/s/N.json, small JSON
pages and RSS feeds in turn, no validators: every fetch is a full 200) after a fixed
latency, and counts the requests for each. For each number of workers, on a fresh
PostgreSQL database: the workers start (`aggregator fetch`, long-running) and fetch
round 1; then each further round makes every source due (SourceQueue.due_now) and
times until every source is stored again. Checked after every round: the server saw
each source exactly once more, and each source was stored exactly once more.

The kill round: 4 workers; once a quarter of a round is stored, one worker is
SIGKILLed; the others take its leased sources when the lease runs out. Checked: every
source is still stored exactly once that round, within one lease time of the kill (and
the 2 s a last fetch may take).

PostgreSQL: a temporary server (initdb + pg_ctl, as the tests start it) unless --url
names one where databases may be created.

    python benchmarks/bench_workers.py [--sources 500] [--latency 0.03] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path

import psycopg

from aggregator.state.postgres import PostgresStore
from aggregator.state.queue import SourceQueue

ROOT = Path(__file__).resolve().parent.parent


def _body(n: int) -> tuple[bytes, str]:
    items = [{"title": f"Source {n} story {i}", "webUrl": f"https://site{n}.example.com/{i}",
              "publishedDateTime": f"2026-11-{1 + (n + i) % 28:02d}T08:00:00Z",
              "excerpt": f"Story {i} of source {n}.", "topics": [f"Topic {n % 12}"],
              "provider": {"name": f"Site {n}", "domain": f"site{n}.example.com"}}
             for i in range(3)]  # fmt: skip
    if n % 2:
        return json.dumps(items).encode(), "application/json"
    entries = "".join(
        f"<item><title>{item['title']}</title><link>{item['webUrl']}</link>"
        f"<guid>{item['webUrl']}</guid><pubDate>Sun, 0{1 + i} Nov 2026 08:00:00 GMT</pubDate>"
        "</item>"
        for i, item in enumerate(items)
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Site {n}</title>'
            f"<link>https://site{n}.example.com/</link><description>d</description>{entries}"
            "</channel></rss>").encode(), "application/rss+xml"  # fmt: skip


def _serve(sources: int, latency: float, port_out: Connection) -> None:
    bodies = [_body(n) for n in range(sources)]
    counts: Counter[int] = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle(self) -> None:
            with contextlib.suppress(OSError):  # a connection of the killed worker
                super().handle()

        def do_GET(self) -> None:
            if self.path == "/_counts":
                self._send(json.dumps(dict(counts)).encode(), "application/json")
                return
            n = int(self.path.rsplit("/", 1)[1].split(".")[0])
            counts[n] += 1  # one handler thread per connection; Counter += is atomic enough
            time.sleep(latency)
            self._send(*bodies[n])

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    port_out.send(server.server_address[1])
    server.serve_forever()


@contextmanager
def feed_server(sources: int, latency: float) -> Iterator[str]:
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_serve, args=(sources, latency, send), daemon=True)
    process.start()
    try:
        if not receive.poll(30):
            raise RuntimeError("benchmark server did not start")
        yield f"http://127.0.0.1:{receive.recv()}"
    finally:
        process.terminate()
        process.join()


def server_counts(base: str, sources: int) -> list[int]:
    import urllib.request

    with urllib.request.urlopen(f"{base}/_counts", timeout=10) as response:
        found = {int(k): v for k, v in json.loads(response.read()).items()}
    return [found.get(n, 0) for n in range(sources)]


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """An admin URL of a server where databases may be created."""
    if url:
        yield url
        return
    sys.path.insert(0, str(ROOT))
    from tests.conftest import PostgresServer, postgres_binaries

    binaries = postgres_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql), or pass --url")
    server = PostgresServer(binaries, "postgres" if os.geteuid() == 0 else None)
    try:
        yield server.url()
    finally:
        server.stop()


def fresh_database(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def write_config(folder: Path, base: str, sources: int, state: str, args: argparse.Namespace
                 ) -> Path:  # fmt: skip
    tables = "".join(f'[[sources]]\nurl = "{base}/s/{n}.json"\n' for n in range(sources))
    config = folder / "config.toml"
    config.write_text(
        '[site]\ntitle = "Bench"\nbase_url = "https://bench.example.org/"\n'
        f'output_dir = "out"\n\n{tables}\n[fetch]\nallow_private_addresses = true\n'
        f"concurrency = {args.concurrency}\ninterval = 3600\nlease_seconds = {args.lease}\n"
        f'retries = 0\n\n[state]\nurl = "{state}"\n',
        encoding="utf-8",
    )
    return config


class Fleet:
    """Worker processes (`aggregator fetch`), and the database they share."""

    def __init__(self, config: Path, state: str, workers: int, sources: int) -> None:
        self.state = state
        self.sources = sources
        self.store = PostgresStore.open(state)
        command = [sys.executable, "-m", "aggregator", "fetch", "-q", "--config", str(config)]
        self.processes = [
            subprocess.Popen([*command, "--worker-id", f"w{i}"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for i in range(workers)
        ]

    def stored(self, round_: int) -> int:
        """Sources stored at least `round_` times."""
        if self.store.execute("SELECT to_regclass('aggregator_sources')")[0][0] is None:
            return 0
        return self.store.execute(
            "SELECT count(*) FROM aggregator_sources WHERE fetches >= %s", (round_,)
        )[0][0]

    def wait_round(self, round_: int, timeout: float = 300) -> float:
        started = time.perf_counter()
        while self.stored(round_) < self.sources:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"round {round_} not done in {timeout:g} s")
            for process in self.processes:
                if process.poll() not in (None, -signal.SIGKILL):
                    raise RuntimeError(f"a worker exited: {process.stderr.read().decode()}")
            time.sleep(0.005)
        return time.perf_counter() - started

    def fetches(self) -> list[int]:
        return [n for (n,) in self.store.execute(
            "SELECT fetches FROM aggregator_sources ORDER BY url")]  # fmt: skip

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(60)
        self.store.close()


def exactly(counts: list[int], expected: int) -> bool:
    return all(count == expected for count in counts)


def measure(admin: str, base: str, workers: int, args: argparse.Namespace) -> dict[str, object]:
    state = fresh_database(admin, f"bench_workers_{workers}")
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), base, args.sources, state, args)
        before = server_counts(base, args.sources)
        fleet = Fleet(config, state, workers, args.sources)
        try:
            first = fleet.wait_round(1)
            times, checks = [], []
            for round_ in range(2, args.rounds + 2):
                SourceQueue(fleet.store).due_now()
                times.append(fleet.wait_round(round_))
                served = [a - b for a, b in zip(server_counts(base, args.sources), before,
                                                strict=True)]  # fmt: skip
                checks.append(exactly(served, round_) and exactly(fleet.fetches(), round_))
        finally:
            fleet.stop()
    best = statistics.median(times)
    return {"workers": workers, "first": first, "round": best, "rate": args.sources / best,
            "once": all(checks)}  # fmt: skip


def kill_round(admin: str, base: str, args: argparse.Namespace) -> dict[str, object]:
    state = fresh_database(admin, "bench_workers_kill")
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), base, args.sources, state, args)
        before = server_counts(base, args.sources)
        fleet = Fleet(config, state, 4, args.sources)
        try:
            fleet.wait_round(1)
            SourceQueue(fleet.store).due_now()
            while fleet.stored(2) < args.sources // 4:
                time.sleep(0.002)
            while not fleet.store.execute("SELECT count(*) FROM aggregator_sources"
                                          " WHERE lease_owner = 'w0'")[0][0]:  # fmt: skip
                time.sleep(0.001)
            time.sleep(args.latency / 2)  # its requests are in flight
            fleet.processes[0].send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            held = fleet.store.execute(
                "SELECT count(*) FROM aggregator_sources WHERE lease_owner = 'w0'")[0][0]
            fleet.wait_round(2, timeout=args.lease * 3 + 60)
            after_kill = time.perf_counter() - killed
            served = [a - b for a, b in zip(server_counts(base, args.sources), before,
                                            strict=True)]  # fmt: skip
            stored_once = exactly(fleet.fetches(), 2)
        finally:
            fleet.stop()
    return {"held": held, "after_kill": after_kill, "stored_once": stored_once,
            "twice": sum(1 for count in served if count == 3),
            "missed": sum(1 for count in served if count < 2)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per response")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per count")
    parser.add_argument("--concurrency", type=int, default=8, help="[fetch] concurrency")
    parser.add_argument("--lease", type=float, default=10.0, help="[fetch] lease_seconds")
    parser.add_argument("--url", help="PostgreSQL admin URL (default: a temporary server)")
    args = parser.parse_args()
    print(f"{args.sources} sources on 127.0.0.1, {args.latency * 1000:g} ms per response, "
          f"[fetch] concurrency = {args.concurrency} per worker; median of {args.rounds} "
          "rounds after the first")  # fmt: skip
    ok = True
    with feed_server(args.sources, args.latency) as base, postgres(args.url) as admin:
        print("| workers | first round (start, register, fetch) | round | sources/s | "
              "each source once per round |")  # fmt: skip
        print("|---|---|---|---|---|")
        for workers in (int(w) for w in args.workers.split(",")):
            row = measure(admin, base, workers, args)
            ok = ok and bool(row["once"])
            once = "yes" if row["once"] else "NO"
            print(f"| {workers} | {row['first']:.2f} s | {row['round']:.2f} s | "
                  f"{row['rate']:.0f} | {once} |", flush=True)  # fmt: skip
        kill = kill_round(admin, base, args)
    within = kill["after_kill"] <= args.lease + 2
    ok = ok and within and bool(kill["stored_once"]) and kill["missed"] == 0
    print(f"kill round: 4 workers, one SIGKILLed holding {kill['held']} leased sources; "
          f"every source stored {kill['after_kill']:.2f} s after the kill (lease "
          f"{args.lease:g} s: {'within' if within else 'NOT within'} one lease time and a "
          "fetch), "
          f"{'each exactly once' if kill['stored_once'] else 'NOT each once'}; "
          f"{kill['twice']} requested twice (the killed worker's fetches in flight), "
          f"{kill['missed']} never fetched")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
