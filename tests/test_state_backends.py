"""The same build from the same inputs gives the same bytes on SQLite and on PostgreSQL
state: a build that fetches its url sources itself (SQLite), and fetch workers plus a
build that reads what they stored (PostgreSQL)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.state import open_store
from aggregator.state.migrations import POSTGRES_STEPS, SQLITE_STEPS, SchemaTooNew, pending

from .conftest import StateBackend, conditional
from .factories import (
    EXAMPLES,
    ROOT,
    fields,
    rss_feed,
    seed_page,
    tree_bytes,
    url_source,
    write_config,
    write_record,
)

FETCH = """
[fetch]
allow_private_addresses = true
retries = 0

[feeds]
archive = true
archive_page_size = 5
"""


def aggregator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)  # fmt: skip


def serve_remote_sources(server: HTTPServer) -> str:
    """Two remote sources: a paged JSON API (2 pages) and an RSS feed; their tables."""
    first = [fields(n) for n in range(1, 6)]
    second = [fields(n) for n in range(6, 9)]
    items = [fields(n, topics=["Robots"]) for n in range(20, 26)]
    for path, body, kind in (
        ("/api/index.json", seed_page(first, 1, 2), "application/json"),
        ("/api/page/2/index.json", seed_page(second, 2, None), "application/json"),
        ("/feed.xml", rss_feed(items), "application/rss+xml"),
    ):
        server.expect_request(path).respond_with_handler(conditional(body, kind))
    return (url_source(server.url_for("/api/index.json"))
            + url_source(server.url_for("/feed.xml"), topics=["Feeds"]))  # fmt: skip


def test_the_same_build_gives_the_same_bytes_on_sqlite_and_postgresql(
    server: HTTPServer, tmp_path: Path, postgres_url: str
) -> None:
    records = tmp_path / "records"
    shutil.copytree(EXAMPLES, records)
    tables = serve_remote_sources(server) + FETCH
    for name in ("sqlite", "postgres"):
        (tmp_path / name).mkdir()
    sqlite_site = write_config(tmp_path / "sqlite", [records], tables)
    postgres_site = write_config(tmp_path / "postgres", [records],
                                 tables + f'\n[state]\nurl = "{postgres_url}"\n')  # fmt: skip

    def build_both() -> None:
        on_sqlite = aggregator("build", "--config", str(sqlite_site))
        fetched = aggregator("fetch", "--once", "--config", str(postgres_site))
        on_postgres = aggregator("build", "--config", str(postgres_site))
        assert fetched.returncode == 0, fetched.stderr
        # The bundled examples hold one malformed record: exit 1 on both, same line.
        assert on_sqlite.returncode == on_postgres.returncode == 1
        assert on_sqlite.stderr == on_postgres.stderr

    build_both()
    out_sqlite, out_postgres = tree_bytes(tmp_path / "sqlite" / "out"), tree_bytes(
        tmp_path / "postgres" / "out")  # fmt: skip
    assert len(out_sqlite) > 20 and "topics/robots/rss.xml" in out_sqlite
    assert "archive/rss-1.xml" in "\n".join(out_sqlite)
    assert out_sqlite == out_postgres
    # A second build over changed inputs (the incremental path, the archive's state)
    write_record(records, "new.md", fields(90, topics=["Robots"]))
    next(records.glob("2026-11-02-lab-releases-*.md")).unlink()
    build_both()
    assert tree_bytes(tmp_path / "sqlite" / "out") == tree_bytes(tmp_path / "postgres" / "out")
    assert tree_bytes(tmp_path / "sqlite" / "out") != out_sqlite


def test_pending_steps_and_a_newer_schema() -> None:
    for steps in (SQLITE_STEPS, POSTGRES_STEPS):
        assert [step.version for step in steps] == list(range(1, len(steps) + 1))
        assert pending("x", 0, steps) == steps
        assert pending("x", len(steps), steps) == ()
        with pytest.raises(SchemaTooNew) as raised:
            pending("x", len(steps) + 1, steps)
        assert "newer than this aggregator knows" in str(raised.value)


def test_a_new_store_is_at_the_last_version_and_reopens_as_it_is(
    state_backend: StateBackend,
) -> None:
    with state_backend.open() as store:
        store.put("archive", "feed", b"history")
    with state_backend.open() as store:
        assert store.get("archive", "feed") == b"history"
    assert _version(state_backend) == (POSTGRES_STEPS if state_backend.url else SQLITE_STEPS)[
        -1].version  # fmt: skip


def test_a_store_of_a_newer_schema_is_refused_and_left_untouched(
    state_backend: StateBackend, tmp_path: Path
) -> None:
    with state_backend.open() as store:
        store.put("archive", "feed", b"history")
    _set_version(state_backend, 99)
    config = write_config(tmp_path, ["records"], f'{state_backend.toml}'
                          f'\n[build]\nstate_path = "{state_backend.path}"\n')  # fmt: skip
    write_record(tmp_path / "records", "a.md", fields(1))
    before = state_backend.path.read_bytes() if state_backend.url is None else None
    with pytest.raises(ConfigError) as raised:
        open_store(load_config(config))
    assert "schema version 99 is newer than this aggregator knows" in str(raised.value)
    result = aggregator("build", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "schema version 99 is newer than this aggregator knows" in result.stderr
    assert "upgrade aggregator (the store was left untouched)" in result.stderr
    assert not (tmp_path / "out").exists()
    if before is not None:
        assert state_backend.path.read_bytes() == before
        assert not state_backend.path.with_name("state.db.corrupt").exists()
    _set_version(state_backend, _latest(state_backend))
    with state_backend.open() as store:
        assert store.get("archive", "feed") == b"history"


def test_a_postgresql_store_at_version_1_gets_the_later_steps_and_keeps_its_entries(
    postgres_url: str,
) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:  # what version 1 made
        db.execute("CREATE TABLE aggregator_schema (version integer NOT NULL,"
                   " one boolean PRIMARY KEY DEFAULT true CHECK (one))")  # fmt: skip
        db.execute("INSERT INTO aggregator_schema (version) VALUES (1)")
        for statement in POSTGRES_STEPS[0].statements:
            db.execute(statement)
        db.execute("INSERT INTO aggregator_entries VALUES ('archive', 'feed', 'history')")
    from aggregator.state.postgres import PostgresStore

    with PostgresStore.open(postgres_url) as store:
        assert store.get("archive", "feed") == b"history"
        assert store.execute("SELECT count(*) FROM aggregator_sources") == [(0,)]
        assert store.execute("SELECT version FROM aggregator_schema") == [
            (POSTGRES_STEPS[-1].version,)]  # fmt: skip


def test_workers_starting_together_on_a_fresh_database_migrate_it_once(postgres_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from aggregator.state.postgres import PostgresStore

    def open_one(_: int) -> int:
        with PostgresStore.open(postgres_url) as store:
            return store.execute("SELECT version FROM aggregator_schema")[0][0]

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(open_one, range(6))) == {POSTGRES_STEPS[-1].version}


def _latest(backend: StateBackend) -> int:
    return (POSTGRES_STEPS if backend.url else SQLITE_STEPS)[-1].version


def _version(backend: StateBackend) -> int:
    if backend.url:
        import psycopg

        with psycopg.connect(backend.url) as db:
            return db.execute("SELECT version FROM aggregator_schema").fetchone()[0]
    import sqlite3

    db = sqlite3.connect(backend.path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def _set_version(backend: StateBackend, version: int) -> None:
    if backend.url:
        import psycopg

        with psycopg.connect(backend.url, autocommit=True) as db:
            db.execute("UPDATE aggregator_schema SET version = %s", (version,))
        return
    import sqlite3

    db = sqlite3.connect(backend.path)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def test_changed_files_are_applied_to_the_story_table_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    """The `changes` path keeps its story table in PostgreSQL as in SQLite: a heat edit
    and a deletion are applied, with the bytes of a build from scratch."""
    from aggregator.pipeline import build

    from .factories import full_build_elsewhere

    records = tmp_path / "records"
    for n in range(1, 9):
        write_record(records, f"record-{n}.md", fields(n, heat=n * 11))
    config = load_config(write_config(tmp_path, [records], f'[state]\nurl = "{postgres_url}"\n'))
    assert build(config).redo == "full"
    write_record(records, "record-3.md", fields(3, heat=99))
    (records / "record-5.md").unlink()
    report = build(config)
    assert (report.redo, report.parsed, report.records) == ("changes", 1, 7)
    fresh = tmp_path / "fresh"
    full_build_elsewhere(load_config(write_config(tmp_path / "sqlite", [records])), fresh)
    assert tree_bytes(config.site.output_dir) == tree_bytes(fresh)
