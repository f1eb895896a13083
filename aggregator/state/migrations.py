"""Versioned schema migrations for both state backends.

Each backend has an ordered list of steps, numbered from 1. A store records the number
of the last step applied (SQLite: `PRAGMA user_version`; PostgreSQL: the one row of
`aggregator_schema`); opening it applies every later step once, in order, each in its
own transaction together with the new number, so a process killed mid-migration leaves
the store at the last whole step. A store whose number is higher than the last step this
program knows was written by a newer aggregator: it is refused with SchemaTooNew and
left untouched, never "upgraded" by dropping what it holds.

To change a schema, append a step; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aggregator.errors import StateUnavailable


@dataclass(frozen=True, slots=True)
class Step:
    version: int  # the schema version once applied; steps are numbered 1, 2, 3, ...
    summary: str
    statements: tuple[str, ...]  # run in one transaction, with the version update
    after: tuple[str, ...] = ()  # run after that transaction (SQLite: VACUUM cannot run in one)


class SchemaTooNew(StateUnavailable):
    """The store was written by a newer aggregator: its schema is past our last step."""

    def __init__(self, location: str, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            location,
            f"schema version {found} is newer than this aggregator knows ({known}); "
            "upgrade aggregator (the store was left untouched)",
        )


def latest(steps: Sequence[Step]) -> int:
    return steps[-1].version if steps else 0


def pending(location: str, current: int, steps: Sequence[Step]) -> tuple[Step, ...]:
    """The steps a store at version `current` still needs, in order."""
    known = latest(steps)
    if current > known:
        raise SchemaTooNew(location, current, known)
    return tuple(step for step in steps if step.version > current)


# Values are mostly 1-3 KB parse results. On SQLite's default 4 KB pages each spills
# into overflow pages: twice the file size and several times slower writes.
SQLITE_PAGE_SIZE = 32 * 1024

_SQLITE_ENTRIES = (
    "CREATE TABLE entries ("
    " namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (namespace, key))"
)

SQLITE_STEPS: tuple[Step, ...] = (
    Step(
        1,
        "entries: (namespace, key) -> value",
        (_SQLITE_ENTRIES + " WITHOUT ROWID",),
    ),
    Step(
        2,
        "entries as a rowid table on 32 KiB pages; version 1's values spilled into "
        "overflow pages (a cache: its entries are dropped)",
        ("DROP TABLE entries", _SQLITE_ENTRIES),
        # The page size of a file only changes by rewriting it, outside WAL.
        ("PRAGMA journal_mode = DELETE", f"PRAGMA page_size = {SQLITE_PAGE_SIZE}", "VACUUM"),
    ),
)

POSTGRES_STEPS: tuple[Step, ...] = (
    Step(
        1,
        "entries: (namespace, key) -> value",
        (
            # COLLATE "C": keys sort by their bytes, as SQLite sorts them.
            'CREATE TABLE aggregator_entries (namespace text COLLATE "C" NOT NULL,'
            ' key text COLLATE "C" NOT NULL, value bytea NOT NULL,'
            " PRIMARY KEY (namespace, key))",
        ),
    ),
    Step(
        2,
        "sources: the fetch workers' schedule and leases, one row per remote URL",
        (
            'CREATE TABLE aggregator_sources (url text COLLATE "C" PRIMARY KEY,'
            " digest bytea NOT NULL,"  # the settings its records depend on
            " interval_seconds double precision NOT NULL,"
            " next_due timestamptz NOT NULL DEFAULT now(),"
            " lease_owner text, lease_token text, lease_until timestamptz,"
            " failures integer NOT NULL DEFAULT 0,"
            " claims bigint NOT NULL DEFAULT 0,"  # leases taken
            " fetches bigint NOT NULL DEFAULT 0,"  # fetches finished and stored
            " last_claimed timestamptz, last_fetched timestamptz,"
            " last_worker text, last_outcome text,"
            " registered timestamptz NOT NULL DEFAULT now())",
            "CREATE INDEX aggregator_sources_due ON aggregator_sources (next_due)",
        ),
    ),
)
