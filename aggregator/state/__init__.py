"""What a build remembers between runs, behind one small interface.

    StateStore              the interface (aggregator.state.store): namespaced keys to bytes
      SqliteStore           the default backend: one SQLite file, `[build] state_path`
      PostgresStore         shared state in PostgreSQL, `[state] url` (state.postgres)
    migrations              the versioned schema steps of both backends
    open_store(config)      the one place a store is opened for writing
    open_read_only(config)  the store for a run that writes nothing, or None
    codec                   the one encoding of stored values (marshal of plain values)
    ParseCache              "parse": each record file's parse result, by path and stamp
    FeedCache               "feeds": each written file's input and output digests
    Snapshot                "build": what the last build read and counted
    fingerprint             digests of the program, its templates and libraries

Other namespaces belong to the stage that remembers: "http" (sources.http_cache: per
URL validators and last good records), "sources" (records each folder gave, for the
shrink guard), "archive" (RFC 5005 histories), "webhooks" and "websub" (queued
deliveries), "storage" (output.storage: what each object in the bucket was given).
Everything stored can be made again: a lost store costs one slow build.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from aggregator.config import Config
from aggregator.errors import ConfigError, StateUnavailable
from aggregator.state.sqlite import SqliteStore
from aggregator.state.store import StateStore

__all__ = [
    "SqliteStore",
    "StateStore",
    "StateUnavailable",
    "memory_store",
    "open_read_only",
    "open_store",
    "unusable_state",
]


def open_store(config: Config, warn: Callable[[str], None] = lambda message: None) -> StateStore:
    """The configured store, opened (and created) for reading and writing: PostgreSQL
    when `[state] url` is set, else the SQLite file. A damaged file is rebuilt and
    `warn` told; a store that cannot be used raises ConfigError naming the setting."""
    if config.state.url is not None:
        from aggregator.state.postgres import PostgresStore  # psycopg, only when asked for

        try:
            return PostgresStore.open(config.state.url, warn)
        except StateUnavailable as exc:
            raise unusable_state(config, exc) from None
    path = config.build.state_path
    try:
        return SqliteStore.open(path, warn)
    except StateUnavailable as exc:
        raise unusable_state(config, exc) from None
    except (OSError, sqlite3.Error) as exc:
        raise unusable_state(config, StateUnavailable(str(path), str(exc))) from None


def open_read_only(config: Config) -> StateStore | None:
    """The configured store for reading only, touching nothing; None if there is none."""
    if config.state.url is not None:
        from aggregator.state.postgres import PostgresStore

        try:
            return PostgresStore.open_read_only(config.state.url)
        except StateUnavailable as exc:
            raise unusable_state(config, exc) from None
    return SqliteStore.open_read_only(config.build.state_path)


def memory_store() -> StateStore:
    """A throw-away store (a dry run with remote sources and no state yet)."""
    return SqliteStore.open(Path(":memory:"))


def unusable_state(config: Config, exc: Exception) -> ConfigError:
    """The one wording of a store that cannot be used, as a config error."""
    detail = exc.reason if isinstance(exc, StateUnavailable) else str(exc)
    if config.state.url is not None:
        from aggregator.state.postgres import redact

        reason = f"expected a usable PostgreSQL database; {redact(config.state.url)}: {detail}"
        return ConfigError(str(config.path), "state.url", reason)
    reason = f"expected a usable state file; {config.build.state_path}: {detail}"
    return ConfigError(str(config.path), "build.state_path", reason)
