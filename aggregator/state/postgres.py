"""The shared state backend: a PostgreSQL database (`[state] url`), with psycopg 3.

The same interface and meaning as the SQLite store: one table of (namespace, key,
value), keys ordered by their bytes, transactions that nest (the outermost commits)
and a process killed mid-transaction loses only that transaction (the server rolls it
back when the connection drops). Fetch workers on many machines and one builder share
it; the fetch schedule lives beside it (aggregator.state.queue).

psycopg is imported only here, only when `[state] url` is set: `pip install
'aggregator[postgres]'`. Every database error is raised as StateUnavailable naming the
database without its password (`redact`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aggregator.errors import StateUnavailable
from aggregator.state.migrations import POSTGRES_STEPS, latest, pending
from aggregator.state.store import StateStore

SCHEMA_VERSION = latest(POSTGRES_STEPS)
CONNECT_TIMEOUT = 10  # seconds to reach the server before the store is unusable
_BATCH = 1_000  # keys per `= ANY(...)` query, rows per executemany
# Advisory lock keys (one 64-bit space per database): "aggr" + what is locked.
MIGRATION_LOCK = 0x61676772_00000001
BUILD_LOCK = 0x61676772_00000002


def redact(url: str) -> str:
    """`url` as shown in messages: any password replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:***@{host}"
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(name == "password" for name, _ in query):
            shown = [(name, "***" if name == "password" else value) for name, value in query]
            return urlunsplit(parts._replace(netloc=netloc, query=urlencode(shown, safe="/*")))
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "the [state] url"


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StateUnavailable(
            "[state] url",
            "PostgreSQL state needs the psycopg driver: pip install 'aggregator[postgres]'",
        ) from None
    return psycopg


def _reason(exc: Exception, url: str = "") -> str:
    """One line from a driver error (libpq's messages run over several), without the
    password libpq may quote back from a URL it could not parse."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if url:
        text = text.replace(url, redact(url))
        for groups in _PASSWORDS.findall(url):
            for secret in groups:
                if secret:
                    text = text.replace(secret, "***")
    return text[:300]


# A password in a URL, however malformed the rest: "//user:SECRET@" or "password=SECRET".
_PASSWORDS = re.compile(r"//[^/:@]*:([^@]*)@|[?&]password=([^&]*)")


def connect(url: str, *, read_only: bool = False) -> Any:
    """A psycopg connection in autocommit mode (transactions are explicit)."""
    psycopg = _driver()
    options = "-c default_transaction_read_only=on" if read_only else None
    try:
        return psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
            application_name="aggregator", options=options,
        )  # fmt: skip
    except psycopg.Error as exc:
        raise StateUnavailable(redact(url), _reason(exc, url)) from None


class PostgresStore(StateStore):
    def __init__(self, connection: Any, url: str) -> None:
        self._db = connection
        self._psycopg = _driver()
        self.url = url
        self.location = redact(url)
        self._depth = 0  # open transaction() blocks: only the outermost one commits

    @classmethod
    def open(cls, url: str, warn: Callable[[str], None] = lambda message: None) -> PostgresStore:
        """Connect and bring the schema up to date (a fresh database works)."""
        store = cls(connect(url), url)
        try:
            with store._errors():
                migrate(store._db, store.location)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_read_only(cls, url: str) -> PostgresStore | None:
        """The store for reading only (the server refuses writes); None if the database
        holds no state of this schema yet. An unreachable server raises StateUnavailable."""
        store = cls(connect(url, read_only=True), url)
        try:
            with store._errors():
                version = schema_version(store._db)
        except BaseException:
            store.close()
            raise
        if version != SCHEMA_VERSION:
            store.close()
            pending(store.location, version, POSTGRES_STEPS)  # newer: SchemaTooNew
            return None
        return store

    @property
    def connection(self) -> Any:
        """The connection, for the fetch queue's statements (same transactions)."""
        return self._db

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._psycopg.Error as exc:
            raise StateUnavailable(self.location, _reason(exc, self.url)) from None

    def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a statement that returns none)."""
        with self._errors():
            cursor = self._db.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    def listen(self, channel: str) -> None:
        """Be told of `NOTIFY channel` (see wait_for_notice)."""
        self.execute(f"LISTEN {channel}")

    def wait_for_notice(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a notice on a channel listened to; True if
        one came (or had come since the last wait)."""
        with self._errors():
            for _notice in self._db.notifies(timeout=timeout, stop_after=1):
                return True
        return False

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them land, or (on error or kill) none. Nests."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._errors(), self._db.transaction():
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    def get(self, namespace: str, key: str) -> bytes | None:
        rows = self.execute(
            "SELECT value FROM aggregator_entries WHERE namespace = %s AND key = %s",
            (namespace, key),
        )
        return bytes(rows[0][0]) if rows else None

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), _BATCH):
            rows = self.execute(
                "SELECT key, value FROM aggregator_entries WHERE namespace = %s AND key = ANY(%s)",
                (namespace, wanted[start : start + _BATCH]),
            )
            found.update((key, bytes(value)) for key, value in rows)
        return found

    def keys(self, namespace: str) -> Iterator[str]:
        rows = self.execute(
            "SELECT key FROM aggregator_entries WHERE namespace = %s ORDER BY key", (namespace,)
        )
        return (key for (key,) in rows)

    def items(self, namespace: str) -> dict[str, bytes]:
        rows = self.execute(
            "SELECT key, value FROM aggregator_entries WHERE namespace = %s ORDER BY key",
            (namespace,),
        )
        return {key: bytes(value) for key, value in rows}

    def put_many(self, namespace: str, pairs: Iterable[tuple[str, bytes]]) -> None:
        pairs = iter(pairs)  # taken a batch at a time: a caller may make values as asked
        rows = [(namespace, key, value) for key, value in islice(pairs, _BATCH)]
        if not rows:
            return
        with self.transaction(), self._errors(), self._db.cursor() as cursor:
            while rows:
                cursor.executemany(
                    "INSERT INTO aggregator_entries (namespace, key, value) VALUES (%s, %s, %s)"
                    " ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value",
                    rows,
                )
                rows = [(namespace, key, value) for key, value in islice(pairs, _BATCH)]

    def delete_many(self, namespace: str, keys: Iterable[str]) -> None:
        doomed = list(keys)
        with self.transaction():
            for start in range(0, len(doomed), _BATCH):
                self.execute(
                    "DELETE FROM aggregator_entries WHERE namespace = %s AND key = ANY(%s)",
                    (namespace, doomed[start : start + _BATCH]),
                )


def schema_version(db: Any) -> int:
    """The version a database's schema is at: 0 when it holds no aggregator tables."""
    row = db.execute("SELECT to_regclass('aggregator_schema') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    found = db.execute("SELECT version FROM aggregator_schema").fetchone()
    return 0 if found is None else int(found[0])


def migrate(db: Any, location: str) -> None:
    """Apply the steps the database lacks, each once, in order, each in its own
    transaction; concurrent openers (two workers starting together) wait for each
    other on an advisory lock instead of racing on CREATE TABLE."""
    if schema_version(db) == SCHEMA_VERSION:
        return  # the usual case: one query
    for step in pending(location, schema_version(db), POSTGRES_STEPS):
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS aggregator_schema (version integer NOT NULL,"
                " one boolean PRIMARY KEY DEFAULT true CHECK (one))"
            )
            db.execute("INSERT INTO aggregator_schema (version) VALUES (0) ON CONFLICT DO NOTHING")
            current = db.execute("SELECT version FROM aggregator_schema FOR UPDATE").fetchone()[0]
            pending(location, current, POSTGRES_STEPS)  # a newer program got there first
            if current >= step.version:
                continue  # applied by another process while we waited
            for statement in (*step.statements, *step.after):
                db.execute(statement)
            db.execute("UPDATE aggregator_schema SET version = %s", (step.version,))


@contextmanager
def advisory_lock(
    url: str,
    key: int,
    timeout: float,
    on_wait: Callable[[], None] | None = None,
    *,
    poll: float = 0.1,
) -> Iterator[bool]:
    """Hold the session advisory lock `key` on its own connection; the server frees it
    when the connection ends, so a killed holder never leaves it behind. Waits at most
    `timeout` seconds; yields True once held, or False if it never was (the caller
    raises its own error)."""
    db = connect(url)
    location = redact(url)
    psycopg = _driver()
    try:
        try:
            held = db.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
            if not held:
                if on_wait is not None:
                    on_wait()
                deadline = time.monotonic() + timeout
                while not held and time.monotonic() < deadline:
                    time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
                    held = db.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        except psycopg.Error as exc:
            raise StateUnavailable(location, _reason(exc, url)) from None
        yield held
    finally:
        db.close()  # frees the lock
