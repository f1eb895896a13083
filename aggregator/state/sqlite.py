"""The default state backend: one SQLite file ([build] state_path), embedded.

One table of (namespace, key, value). Writes happen in transactions, so a killed run
leaves the previous state intact. A corrupt or foreign file is moved aside and
rebuilt with a warning, never fatal: everything in it can be made again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator.state.store import StateStore

SCHEMA_VERSION = 2
APPLICATION_ID = 0x41676772  # "Aggr": tells our file from any other SQLite file
# Values are mostly 1-3 KB parse results. On SQLite's default 4 KB pages each spills
# into overflow pages: twice the file size and several times slower writes.
PAGE_SIZE = 32 * 1024
_BATCH = 500  # keys per `IN (...)` query (SQLite allows 32 766 parameters)


class SqliteStore(StateStore):
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self.location = str(path)

    @classmethod
    def open(cls, path: Path, warn: Callable[[str], None] = lambda message: None) -> SqliteStore:
        """Open (or create) the store at `path`; `:memory:` gives a throw-away store."""
        if str(path) == ":memory:":
            return cls(_connect(":memory:"), path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return cls(_connect(str(path)), path)
        except sqlite3.DatabaseError as exc:
            if not path.is_file() or path.is_symlink():
                raise  # a folder, a device, a link: not ours to move aside
            aside = path.with_name(path.name + ".corrupt")
            warn(f"{path}: state file unusable ({exc}); moved to {aside.name} and rebuilt")
            path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            return cls(_connect(str(path)), path)

    @classmethod
    def open_read_only(cls, path: Path) -> SqliteStore | None:
        """The store at `path` for reading only, touching nothing on disk (no journal,
        no lock files: `immutable`), or None if there is no usable one. A write raises."""
        if not path.is_file():
            return None
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error:
            app_id = version = None
        if (app_id, version) != (APPLICATION_ID, SCHEMA_VERSION):
            db.close()
            return None
        return cls(db, path)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them land, or (on error or kill) none. Nests."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def get(self, namespace: str, key: str) -> bytes | None:
        row = self._db.execute(
            "SELECT value FROM entries WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), _BATCH):
            batch = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT key, value FROM entries WHERE namespace = ? AND key IN ({marks})",
                (namespace, *batch),
            )
            found.update((key, bytes(value)) for key, value in rows)
        return found

    def keys(self, namespace: str) -> Iterator[str]:
        rows = self._db.execute("SELECT key FROM entries WHERE namespace = ?", (namespace,))
        return (key for (key,) in rows)

    def items(self, namespace: str) -> dict[str, bytes]:
        rows = self._db.execute("SELECT key, value FROM entries WHERE namespace = ?", (namespace,))
        return {key: bytes(value) for key, value in rows}

    def put_many(self, namespace: str, pairs: Iterable[tuple[str, bytes]]) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO entries (namespace, key, value) VALUES (?, ?, ?)",
                ((namespace, key, value) for key, value in pairs),
            )

    def delete_many(self, namespace: str, keys: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany(
                "DELETE FROM entries WHERE namespace = ? AND key = ?",
                ((namespace, key) for key in keys),
            )


def _connect(target: str) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit, in StateStore.transaction().
    db = sqlite3.connect(target, timeout=30, isolation_level=None)
    try:
        _prepare(db)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def _prepare(db: sqlite3.Connection) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if tables and app_id != APPLICATION_ID:
        raise sqlite3.DatabaseError("not an aggregator state file")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if tables and version != SCHEMA_VERSION:
        db.execute("DROP TABLE IF EXISTS entries")  # a cache: safe to start over
        # The page size of an existing file only changes by rewriting it, outside WAL.
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        db.execute("VACUUM")
    elif not tables:
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # taken when the file is first written
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS entries ("
        " namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
        " PRIMARY KEY (namespace, key))"
    )
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
