"""Fetch workers (`aggregator fetch`) sharing remote sources through a real PostgreSQL
server, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from aggregator.config import FetchConfig, load_config
from aggregator.sources.http_cache import UrlStates
from aggregator.sources.schedule import next_delay
from aggregator.sources.worker import FetchWorker
from aggregator.state.postgres import BUILD_LOCK, PostgresStore, advisory_lock
from aggregator.state.queue import SourceQueue

from .conftest import SourceFarm
from .factories import ROOT, write_config

FETCH = """
[fetch]
allow_private_addresses = true
timeout = 5.0
retries = 0
concurrency = {concurrency}
interval = 60
lease_seconds = {lease}
max_backoff = 86400
"""


def site(tmp_path: Path, farm: SourceFarm, url: str, *, concurrency: int = 2,
         lease: float = 300, extra: str = "") -> Path:  # fmt: skip
    fetch = FETCH.format(concurrency=concurrency, lease=lease)
    return write_config(tmp_path, (), f'{farm.sources_toml()}{fetch}\n[state]\nurl = "{url}"\n'
                        f"{extra}")  # fmt: skip


def aggregator(*args: str, **options) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False, **options)  # fmt: skip


def rows(url: str):
    with PostgresStore.open(url) as store:
        return {row.url: row for row in SourceQueue(store).rows()}


def make_due(url: str) -> None:
    """Every source due now (instead of waiting out its schedule)."""
    with PostgresStore.open(url) as store:
        SourceQueue(store).due_now()


def delays(url: str) -> dict[str, float]:
    """Each source's wait from its last fetch to its next due time, in seconds."""
    with PostgresStore.open(url) as store:
        found = store.execute("SELECT url, EXTRACT(EPOCH FROM next_due - last_fetched)"
                              " FROM aggregator_sources")  # fmt: skip
    return {source: round(float(delay)) for source, delay in found}


def test_two_workers_share_the_sources_each_fetched_exactly_once(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 40, latency=0.05)
    config = load_config(site(tmp_path, farm, postgres_url))
    reports = {}

    def work(name: str) -> None:
        with FetchWorker.open(config, name) as worker:
            reports[name] = worker.run(once=True)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert farm.requests == dict.fromkeys(range(40), 1)  # every source once, none twice
    assert reports["w1"].fetched + reports["w2"].fetched == 40
    assert reports["w1"].fetched and reports["w2"].fetched, "one worker did everything"
    stored = rows(postgres_url)
    assert {row.fetches for row in stored.values()} == {1}
    assert {row.lease_owner for row in stored.values()} == {None}
    assert {row.last_worker for row in stored.values()} == {"w1", "w2"}
    with PostgresStore.open(postgres_url) as store:  # the records are stored for builds
        states = UrlStates(store)
        for n in range(40):
            result = states.get(farm.url(n)).result
            assert result is not None and len(result.records) == 1
    # A second pass right away finds nothing due: the interval has not passed.
    with FetchWorker.open(config, "w1") as worker:
        assert worker.run(once=True).fetched == 0
    make_due(postgres_url)
    with FetchWorker.open(config, "w1") as worker:
        again = worker.run(once=True)
    assert again.fetched == 40 and again.not_modified == 0
    assert farm.requests == dict.fromkeys(range(40), 2)


def test_a_worker_killed_mid_fetch_costs_only_its_lease(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 6)
    farm.hold(0)  # the first request for source 0 hangs: the worker is killed in it
    config = site(tmp_path, farm, postgres_url, concurrency=1, lease=2)
    first = subprocess.Popen([sys.executable, "-m", "aggregator", "fetch", "--once",
                              "--config", str(config), "--worker-id", "doomed"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert farm.arrived[0].wait(30), "the worker never asked for source 0"
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        farm.release(0)
    killed_at = rows(postgres_url)[farm.url(0)]
    assert killed_at.lease_owner == "doomed" and killed_at.fetches == 0
    # Another worker right away: everything but the leased source.
    second = aggregator("fetch", "--once", "--config", str(config), "--worker-id", "second")
    assert second.returncode == 0, second.stderr
    assert farm.requests[0] == 1
    assert rows(postgres_url)[farm.url(0)].lease_owner == "doomed"
    time.sleep(2.2)  # the lease runs out
    third = aggregator("fetch", "--once", "--config", str(config), "--worker-id", "third")
    assert third.returncode == 0, third.stderr
    after = rows(postgres_url)
    assert after[farm.url(0)].last_worker == "third" and after[farm.url(0)].fetches == 1
    assert after[farm.url(0)].last_claimed >= killed_at.lease_until
    assert {row.fetches for row in after.values()} == {1}
    assert farm.requests == {0: 2, **dict.fromkeys(range(1, 6), 1)}
    assert "fetched 1 sources" in third.stdout


def test_a_503_with_retry_after_delays_the_next_claim(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 3)
    farm.answer(0, 503, {"Retry-After": "3600"})
    farm.answer(1, 429, {"Retry-After": "5"})  # shorter than the backoff: the backoff wins
    config = load_config(site(tmp_path, farm, postgres_url))
    with FetchWorker.open(config, "w") as worker:
        report = worker.run(once=True)
    assert report.fetched == 3 and report.failing == 2 and report.errors == 2
    waits = delays(postgres_url)
    assert waits == {farm.url(0): 3600, farm.url(1): 120, farm.url(2): 60}
    with PostgresStore.open(postgres_url) as store:  # nothing is due: none is claimed
        assert SourceQueue(store).claim("w", 10, 60, [farm.url(n) for n in range(3)]) == []


def test_cache_control_max_age_is_honoured_and_no_cache_is_not_a_delay(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 3)
    farm.answer(0, 200, {"Cache-Control": "public, max-age=7200"})
    farm.answer(1, 200, {"Cache-Control": "max-age=10"})  # shorter than the interval
    farm.answer(2, 200, {"Cache-Control": "no-cache, max-age=7200"})
    config = load_config(site(tmp_path, farm, postgres_url))
    with FetchWorker.open(config, "w") as worker:
        assert worker.run(once=True).fetched == 3
    assert delays(postgres_url) == {farm.url(0): 7200, farm.url(1): 60, farm.url(2): 60}


def test_backoff_grows_with_each_failure_and_resets_on_success(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 1)
    farm.answer(0, 500)
    config = load_config(site(tmp_path, farm, postgres_url))
    seen = []
    for _round in range(4):
        with FetchWorker.open(config, "w") as worker:
            worker.run(once=True)
        seen.append(delays(postgres_url)[farm.url(0)])
        make_due(postgres_url)
    assert seen == [120, 240, 480, 960]
    assert rows(postgres_url)[farm.url(0)].failures == 4
    farm.answer(0, 200)
    with FetchWorker.open(config, "w") as worker:
        worker.run(once=True)
    assert delays(postgres_url)[farm.url(0)] == 60
    assert rows(postgres_url)[farm.url(0)].failures == 0


def test_the_schedule_rules() -> None:
    fetch = FetchConfig(interval=60, max_backoff=3600)
    assert next_delay(fetch, 60, failures=0) == 60
    assert next_delay(fetch, 60, failures=0, max_age=600) == 600
    assert next_delay(fetch, 60, failures=0, max_age=10**9) == 3600  # capped
    assert [next_delay(fetch, 60, failures=n) for n in (1, 2, 3, 10)] == [120, 240, 480, 3600]
    assert next_delay(fetch, 60, failures=1, retry_after=1000) == 1000
    assert next_delay(fetch, 60, failures=1, retry_after=5) == 120
    assert next_delay(fetch, 60, failures=1, retry_after=10**9) == 3600
    assert next_delay(fetch, 7200, failures=3) == 7200  # never sooner than its interval


def test_a_build_reads_the_stored_records_and_fetches_nothing(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 4)
    config = site(tmp_path, farm, postgres_url)
    before = aggregator("build", "--config", str(config))
    assert before.returncode == 0, before.stderr
    assert before.stderr.count("not fetched yet: no fetch worker has stored it") == 4
    assert sum(farm.requests.values()) == 0  # the builder fetched nothing
    fetched = aggregator("fetch", "--once", "--config", str(config))
    assert fetched.returncode == 0, fetched.stderr
    built = aggregator("build", "--config", str(config))
    assert built.returncode == 0, built.stderr
    assert "not fetched yet" not in built.stderr
    assert "4 remote sources as the fetch workers stored them: 0 sources failing" in built.stdout
    assert sum(farm.requests.values()) == 4
    rss = (tmp_path / "out" / "rss.xml").read_text()
    for n in range(4):
        assert f"Story number {n}<" in rss
    farm.answer(2, 503)
    make_due(postgres_url)
    failing = aggregator("fetch", "--once", "--config", str(config))
    assert failing.returncode == 1
    assert failing.stderr.count("\n") == 1 and "HTTP 503 Service Unavailable" in failing.stderr
    rebuilt = aggregator("build", "--config", str(config))
    assert rebuilt.returncode == 1  # the failing source is reported by the build too
    assert "HTTP 503 Service Unavailable (failing since" in rebuilt.stderr
    assert "kept its 1 record from the last good fetch" in rebuilt.stderr
    assert "Story number 2<" in (tmp_path / "out" / "rss.xml").read_text()


def test_two_builders_never_interleave_on_the_database_lock(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 1)
    config = site(tmp_path, farm, postgres_url, extra="\n[build]\nlock_timeout = 0.5\n")
    with advisory_lock(postgres_url, BUILD_LOCK, 0) as held:  # another builder, elsewhere
        assert held
        locked = aggregator("build", "--config", str(config))
        assert locked.returncode == 3, locked.stderr
        host = postgres_url.split("@")[1]
        assert (f"another build is running (it holds the build lock of postgresql://"
                f"aggregator@{host}); waited 0.5 s") in locked.stderr  # fmt: skip
        assert not (tmp_path / "out").exists()
    built = aggregator("build", "--config", str(config))  # the lock died with its holder
    assert built.returncode == 0, built.stderr


def test_fetch_without_postgresql_state_says_what_to_set(tmp_path: Path, server) -> None:
    farm = SourceFarm(server, 1)
    config = write_config(tmp_path, (), farm.sources_toml())
    result = aggregator("fetch", "--once", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"aggregator: config error: {config}: state.url: expected a postgresql:// URL: fetch "
        "workers share their state in PostgreSQL (with the SQLite state file, 'aggregator "
        "build' fetches the sources itself)"
    )
    assert sum(farm.requests.values()) == 0


def test_a_long_running_worker_stops_after_its_batch_on_sigterm(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 3)
    config = site(tmp_path, farm, postgres_url)
    worker = subprocess.Popen([sys.executable, "-m", "aggregator", "fetch", "--config",
                               str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip

    def wait_for(fetches: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while sum(r.fetches for r in rows(postgres_url).values()) < fetches:
            assert time.monotonic() < deadline and worker.poll() is None, "not fetched in time"
            time.sleep(0.05)

    wait_for(3, 30)
    make_due(postgres_url)  # the idle worker is woken (NOTIFY), not left asleep
    wait_for(6, 3)
    os.kill(worker.pid, signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert out.startswith("fetched 6 sources in ")
    assert farm.requests == dict.fromkeys(range(3), 2)


@pytest.mark.parametrize("url", ["mysql://db/news", "news.example.org/db", "postgresql+x://h/d"])
def test_a_state_url_must_be_postgresql(tmp_path: Path, url: str) -> None:
    config = write_config(tmp_path, ["r"], f'[state]\nurl = "{url}"\n')
    result = aggregator("check", "--config", str(config))
    assert result.returncode == 2
    assert "state.url: expected a postgresql://user@host/database URL" in result.stderr


def test_check_topics_explain_and_dry_run_read_the_stored_records(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    farm = SourceFarm(server, 3)
    config = site(tmp_path, farm, postgres_url)
    assert aggregator("fetch", "--once", "--config", str(config)).returncode == 0
    topics = aggregator("topics", "--config", str(config), "--json")
    assert topics.returncode == 0, topics.stderr
    assert '"name": "Topic 2"' in topics.stdout
    dry = aggregator("build", "--dry-run", "--config", str(config))
    assert dry.returncode == 0, dry.stderr
    assert "would add topics/topic-1/ (Topic 1)" in dry.stdout
    checked = aggregator("check", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("3 records from 3 files: 0 rejected")
    explained = aggregator("explain", "--config", str(config), "--topic", "AI")
    assert explained.returncode == 0, explained.stderr
    assert "Story number 1" in explained.stdout
    assert farm.requests == dict.fromkeys(range(3), 1)  # none of them fetched anything
