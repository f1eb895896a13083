"""The snapshot ("build" namespace): what the last build read and counted, so that
aggregator.incremental can tell what changed since. Each folder's file names and
stamps are values of their own, so that a build rewrites only what changed.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from dataclasses import dataclass
from pathlib import Path

from aggregator.config import Config
from aggregator.errors import Problem
from aggregator.state.codec import Undecodable, pack, unpack
from aggregator.state.keys import Listing
from aggregator.state.store import StateStore

SNAPSHOT = "build"  # state namespace: what the last build read and chose
LAST = "last"  # the settings, the folders, the counts and the problems
NAMES = "names:"  # + folder key: the folder's file names as listed
STAMPS = "stamps:"  # + folder key: their sizes and mtimes


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
        stored = store.items(SNAPSHOT)
        data = stored.get(LAST)
        if data is None:
            return None
        try:
            settings, folders, counts, problems = unpack(data)
            if type(folders) is not tuple:
                return None  # written by an earlier version: a full build replaces it
            listings: dict[str, Listing] = {}
            for folder in folders:
                sizes, mtimes = array("q"), array("q")
                # Popped: each value is let go once read (at a million files the names
                # alone are 70 MB, and would otherwise be held twice).
                packed_sizes, packed_mtimes = unpack(stored.pop(STAMPS + folder))
                sizes.frombytes(packed_sizes)
                mtimes.frombytes(packed_mtimes)
                if len(sizes) != len(mtimes):
                    return None
                listings[folder] = (unpack(stored.pop(NAMES + folder)), sizes, mtimes)
            return cls(
                settings,
                listings,
                dict(zip(cls.COUNTS, counts, strict=True)),
                tuple(Problem(*values) for values in problems),
            )
        except (Undecodable, ValueError, TypeError, AttributeError, KeyError):
            return None

    def save(self, store: StateStore, previous: Snapshot | None = None) -> None:
        """Write the snapshot; with the `previous` one (as loaded at the start of this
        build), only the folders' names and stamps that differ from it: a build that
        edits a few files rewrites a few folders' stamps, not every file name."""
        from aggregator.model import field_values  # not needed to load one

        before = {} if previous is None else previous.listings
        data = pack(
            (
                self.settings,
                tuple(self.listings),
                tuple(self.counts[name] for name in self.COUNTS),
                tuple(field_values(problem) for problem in self.problems),
            )
        )
        writes = [(LAST, data)]
        for folder, (names, sizes, mtimes) in self.listings.items():
            then = before.get(folder)
            if then is None or then[0] != names:
                writes.append((NAMES + folder, pack(names)))
            if then is None or then[1] != sizes or then[2] != mtimes:
                writes.append((STAMPS + folder, pack((sizes.tobytes(), mtimes.tobytes()))))
        with store.transaction():
            gone = [key for key in store.keys(SNAPSHOT) if key != LAST and
                    key.partition(":")[2] not in self.listings]  # fmt: skip
            store.delete_many(SNAPSHOT, gone)
            store.put_many(SNAPSHOT, writes)

    @staticmethod
    def forget(store: StateStore) -> None:
        store.delete_many(SNAPSHOT, [LAST])
