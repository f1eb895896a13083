"""The fetch workers' schedule in PostgreSQL: one row per remote URL (`aggregator_sources`).

A worker registers the config's remote sources (`register`: an upsert, so a fresh
database works and a source whose settings changed is due at once), claims due ones
(`claim`: `FOR UPDATE SKIP LOCKED`, so two workers never take the same row, and a lease
until `now() + lease`), fetches them, and releases them with their next due time
(`release`, in the same transaction as the records it stores). A worker killed
mid-fetch costs only its lease: once `lease_until` passes, the row is due again for any
worker, and the dead worker's release, should it ever come, matches no row (each claim
has its own token). Every time is the database server's clock, so the machines'
clocks need not agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aggregator.state.postgres import PostgresStore

REGISTER_LOCK = 0x61676772_00000003  # one registration at a time (workers starting together)
DUE_CHANNEL = "aggregator_due"  # NOTIFY: sources became due sooner than scheduled


@dataclass(frozen=True, slots=True)
class Registration:
    url: str
    digest: bytes  # the settings its records depend on
    interval: float  # seconds between fetches


@dataclass(frozen=True, slots=True)
class Registered:
    added: int
    changed: int  # settings changed: due at once
    retired: int  # no longer in the config: forgotten


@dataclass(frozen=True, slots=True)
class Claim:
    url: str
    token: str  # this claim's own: a release with another token matches nothing
    failures: int  # failed fetches in a row before this one
    interval: float


@dataclass(frozen=True, slots=True)
class Release:
    url: str
    failures: int  # failed fetches in a row after this one (0: it succeeded)
    delay: float  # seconds until it is due again
    outcome: str  # "ok", or why it failed


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One source's schedule as stored (for `aggregator fetch --status`, tests and
    benchmarks)."""

    url: str
    next_due: datetime
    lease_owner: str | None
    lease_until: datetime | None
    failures: int
    claims: int
    fetches: int
    last_claimed: datetime | None
    last_fetched: datetime | None
    last_worker: str | None
    last_outcome: str | None


class SourceQueue:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def register(self, sources: Sequence[Registration]) -> Registered:
        """Make the table hold exactly these sources: new ones due now, changed ones
        due now, the others' schedules kept, those no longer listed dropped."""
        store = self._store
        with store.transaction():
            store.execute("SELECT pg_advisory_xact_lock(%s)", (REGISTER_LOCK,))
            known = {url: (bytes(digest), interval) for url, digest, interval in store.execute(
                "SELECT url, digest, interval_seconds FROM aggregator_sources")}  # fmt: skip
            wanted = {source.url: source for source in sources}
            added = [s for url, s in sorted(wanted.items()) if url not in known]
            changed = [s for url, s in sorted(wanted.items())
                       if url in known and known[url][0] != s.digest]  # fmt: skip
            moved = [s for url, s in sorted(wanted.items())
                     if url in known and known[url][0] == s.digest
                     and known[url][1] != s.interval]  # fmt: skip
            retired = sorted(set(known) - set(wanted))
            if added:
                store.execute(
                    "INSERT INTO aggregator_sources (url, digest, interval_seconds)"
                    " SELECT * FROM unnest(%s::text[], %s::bytea[], %s::float8[])",
                    _columns(added),
                )
            if changed:
                store.execute(
                    "UPDATE aggregator_sources AS s SET digest = r.digest,"
                    " interval_seconds = r.interval, next_due = now(), failures = 0"
                    " FROM unnest(%s::text[], %s::bytea[], %s::float8[]) AS r(url, digest,"
                    " interval) WHERE s.url = r.url",
                    _columns(changed),
                )
            if moved:  # only the interval: the next fetch comes no later than the new one
                store.execute(
                    "UPDATE aggregator_sources AS s SET interval_seconds = r.interval,"
                    " next_due = LEAST(s.next_due, COALESCE(s.last_fetched, now())"
                    " + make_interval(secs => r.interval))"
                    " FROM unnest(%s::text[], %s::bytea[], %s::float8[]) AS r(url, digest,"
                    " interval) WHERE s.url = r.url",
                    _columns(moved),
                )
            if retired:
                store.execute("DELETE FROM aggregator_sources WHERE url = ANY(%s)", (retired,))
            if added or changed or moved:
                store.execute(f"NOTIFY {DUE_CHANNEL}")  # idle workers: new work (at commit)
        return Registered(len(added), len(changed), len(retired))

    def due_now(self, urls: Sequence[str] | None = None) -> int:
        """Make sources (all, or `urls`) due now and wake idle workers; how many."""
        with self._store.transaction():
            where = "" if urls is None else " WHERE url = ANY(%s)"
            rows = self._store.execute(
                f"UPDATE aggregator_sources SET next_due = now(){where} RETURNING url",
                None if urls is None else (list(urls),),
            )
            self._store.execute(f"NOTIFY {DUE_CHANNEL}")
        return len(rows)

    def claim(
        self,
        owner: str,
        limit: int,
        lease: float,
        urls: Sequence[str],
        exclude: Sequence[str] = (),
    ) -> list[Claim]:
        """Lease up to `limit` of `urls` that are due and not leased (or whose lease
        ran out), the longest overdue first; `exclude`: URLs not to take again."""
        token = uuid.uuid4().hex
        rows = self._store.execute(
            "UPDATE aggregator_sources AS s SET lease_owner = %(owner)s, lease_token = %(token)s,"
            " lease_until = now() + make_interval(secs => %(lease)s), claims = s.claims + 1,"
            " last_claimed = now()"
            " FROM (SELECT url FROM aggregator_sources"
            "       WHERE next_due <= now() AND (lease_until IS NULL OR lease_until <= now())"
            "         AND url = ANY(%(urls)s) AND NOT url = ANY(%(exclude)s)"
            "       ORDER BY next_due, url LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS due"
            " WHERE s.url = due.url RETURNING s.url, s.failures, s.interval_seconds",
            {"owner": owner, "token": token, "lease": lease, "urls": list(urls),
             "exclude": list(exclude), "limit": limit},
        )  # fmt: skip
        claims = [Claim(url, token, failures, interval) for url, failures, interval in rows]
        return sorted(claims, key=lambda claim: claim.url)

    def release(self, owner: str, token: str, releases: Sequence[Release]) -> set[str]:
        """Free the claimed sources with their next due times; the URLs still held
        under `token` (the others' leases ran out and another worker took them: what
        was fetched for those must not be stored). Call inside the transaction that
        stores the fetched records."""
        if not releases:
            return set()
        rows = self._store.execute(
            "UPDATE aggregator_sources AS s SET lease_owner = NULL, lease_token = NULL,"
            " lease_until = NULL, next_due = now() + make_interval(secs => r.delay),"
            " failures = r.failures, fetches = s.fetches + 1, last_fetched = now(),"
            " last_worker = %s, last_outcome = r.outcome"
            " FROM unnest(%s::text[], %s::int[], %s::float8[], %s::text[])"
            "      AS r(url, failures, delay, outcome)"
            " WHERE s.url = r.url AND s.lease_token = %s RETURNING s.url",
            (owner, [r.url for r in releases], [r.failures for r in releases],
             [r.delay for r in releases], [r.outcome for r in releases], token),
        )  # fmt: skip
        return {url for (url,) in rows}

    def seconds_until_due(self, urls: Sequence[str]) -> float | None:
        """Seconds until the first of `urls` can be claimed (0 if one can now); None if
        none is registered."""
        rows = self._store.execute(
            "SELECT EXTRACT(EPOCH FROM min(GREATEST(next_due, COALESCE(lease_until, next_due)))"
            " - now()) FROM aggregator_sources WHERE url = ANY(%s)",
            (list(urls),),
        )
        value = rows[0][0] if rows else None
        return None if value is None else max(0.0, float(value))

    def rows(self) -> list[SourceRow]:
        found = self._store.execute(
            "SELECT url, next_due, lease_owner, lease_until, failures, claims, fetches,"
            " last_claimed, last_fetched, last_worker, last_outcome"
            " FROM aggregator_sources ORDER BY url"
        )
        return [SourceRow(*row) for row in found]


def _columns(sources: Sequence[Registration]) -> tuple[list[str], list[bytes], list[float]]:
    return ([s.url for s in sources], [s.digest for s in sources], [s.interval for s in sources])
