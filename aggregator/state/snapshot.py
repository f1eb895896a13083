"""The snapshot ("build" namespace): what the last build read and counted, so that
aggregator.incremental can tell what changed since.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import Config
from aggregator.errors import Problem
from aggregator.state.codec import Undecodable, pack, unpack
from aggregator.state.store import StateStore

if TYPE_CHECKING:
    from aggregator.sources.folder import Listing

SNAPSHOT = "build"  # state namespace: what the last build read and chose


def settings_digest(config: Config, context: bytes, output: Path) -> bytes:
    """Digest of what a build depends on besides the record files: the program, the
    settings and the output folder."""
    digest = hashlib.sha256(context)
    curation = (config.ranking, config.feeds, config.clustering, config.filters)
    # Which files a source reads and which records it keeps (not in the parse context:
    # they change no file's parse result).
    chosen = [(s.include, s.exclude, s.filters) for s in config.sources]
    digest.update(repr((config.site, curation, chosen)).encode())
    digest.update(os.path.abspath(output).encode())
    return digest.digest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the last build read, so that the next one can skip the work: a rerun over
    the very same files, settings and program is that build again."""

    settings: bytes  # settings_digest
    listings: dict[str, Listing]  # every record file read, by its folder's key (FoundFiles)
    counts: dict[str, int]  # BuildReport counts, by field name (COUNTS)
    problems: tuple[Problem, ...]  # what the sources' files were found to hold

    COUNTS = ("documents", "records", "unpublished", "filtered", "duplicates", "items", "feeds",
              "files")  # fmt: skip

    @classmethod
    def load(cls, store: StateStore) -> Snapshot | None:
        """The last build's snapshot, whatever its settings (aggregator.incremental
        compares them); None if there is none or it cannot be read."""
        data = store.get(SNAPSHOT, "last")
        if data is None:
            return None
        try:
            stored, listings, counts, problems = unpack(data)
            if not all(type(listing) is tuple and len(listing) == 3
                       for listing in listings.values()):  # fmt: skip
                return None  # written by an earlier version: a full build replaces it
            return cls(
                stored,
                listings,
                dict(zip(cls.COUNTS, counts, strict=True)),
                tuple(Problem(*values) for values in problems),
            )
        except (Undecodable, ValueError, TypeError, AttributeError):
            return None

    def save(self, store: StateStore) -> None:
        from aggregator.model import field_values  # not needed to load one

        data = pack(
            (
                self.settings,
                self.listings,
                tuple(self.counts[name] for name in self.COUNTS),
                tuple(field_values(problem) for problem in self.problems),
            )
        )
        store.put(SNAPSHOT, "last", data)

    @staticmethod
    def forget(store: StateStore) -> None:
        store.delete_many(SNAPSHOT, ["last"])
