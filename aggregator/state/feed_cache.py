"""The feed cache ("feeds" namespace): for every file a build wrote, a digest of the
inputs it was rendered from and of the bytes written, so a feed whose inputs did not
change is not rendered again, and a file changed or removed by hand is written again.
"""

from __future__ import annotations

import hashlib
import marshal
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.state.store import StateStore

if TYPE_CHECKING:
    from aggregator.config import SiteConfig
    from aggregator.rank import FeedPlan

FEEDS = "feeds"
# inputs digest, output sha256, size and mtime_ns of the file as written
_FEED_ENTRY = struct.Struct("<32s32sqq")



def feed_inputs(
    program: bytes,
    site: SiteConfig,
    plan: FeedPlan,
    names: dict[str, str],
    archive_pages: int = 0,
    seen: dict[int, bytes] | None = None,
) -> bytes:
    """Digest of everything a feed's bytes are made from: the program, the site settings,
    the feed's topic, how many archive documents it links to, and its items in order,
    with the topic names shown for them. `seen` keeps each item's part by the item's
    id across the feeds of one build (a story is in the all-topics feed and its
    topics'); it must not outlive the items."""
    # Imported here: a rebuild that renders nothing checks the cache without them.
    from aggregator.model import record_values
    from aggregator.topics import topic_key

    digest = hashlib.sha256(program)
    digest.update(repr((site, plan.topic, plan.directory, archive_pages)).encode())
    for item in plan.items:
        part = None if seen is None else seen.get(id(item))
        if part is None:
            shown = [names.get(topic_key(name), name) for name in item.topics]
            # The record's plain values, in marshal format 0, which writes values only
            # (later formats also write which objects are shared or interned, which equal
            # values need not be); repr would walk every nested dataclass.
            part = marshal.dumps((record_values(item), shown), 0)
            if seen is not None:
                seen[id(item)] = part
        digest.update(part)
    return digest.digest()


class FeedCache:
    """Which feed files are known to hold what their current inputs would render."""

    def __init__(self, store: StateStore, output: Path, *, full: bool = False) -> None:
        self._store = store
        self._output = output
        self._known = store.items(FEEDS)
        self._entries = {} if full else dict(self._known)
        self._now: dict[str, bytes] = {}

    def is_current(self, relative: str, inputs: bytes) -> bool:
        """True if the file was rendered from `inputs` and still holds those bytes."""
        entry = self._entries.get(relative)
        if entry is None or len(entry) != _FEED_ENTRY.size or entry[:32] != inputs:
            return False
        if not self._holds(relative, entry):
            return False
        self._now[relative] = entry
        return True

    def _holds(self, relative: str, entry: bytes) -> bool:
        """True if the file is on disk with the bytes `entry` recorded. A file with the
        size and modification time it had when written is taken to hold them (as make
        and rsync do: a no-change rebuild then reads none of the output); any other is
        read and its digest compared."""
        if len(entry) != _FEED_ENTRY.size:
            return False  # an entry of an older layout: render the file again
        _, sha256, size, mtime_ns = _FEED_ENTRY.unpack(entry)
        path = self._output / relative
        try:
            info = path.stat()
            if info.st_size == size and info.st_mtime_ns == mtime_ns:
                return True
            data = path.read_bytes()
        except OSError:
            return False
        return len(data) == size and hashlib.sha256(data).digest() == sha256

    def rendered(self, relative: str, inputs: bytes, sha256: bytes, size: int) -> None:
        """The file now holds `size` bytes with this digest, rendered from `inputs`."""
        try:
            mtime_ns = (self._output / relative).stat().st_mtime_ns
        except OSError:
            mtime_ns = -1  # not there: the next build reads it to tell
        self._now[relative] = _FEED_ENTRY.pack(inputs, sha256, size, mtime_ns)

    def all_current(self) -> bool:
        """True if every file the last build made is on disk with the bytes it wrote."""
        return bool(self._known) and all(
            self._holds(relative, entry) for relative, entry in self._known.items()
        )

    def stale(self) -> list[tuple[str, bytes, int]]:
        """Files an earlier build made that this one did not: (relative path, sha256, size).
        Call after every file of this build was rendered or found current."""
        return [
            (relative, entry[32:64], int.from_bytes(entry[64:72], "little", signed=True))
            for relative, entry in sorted(self._known.items())
            if relative not in self._now and len(entry) >= 72
        ]

    def finish(self) -> None:
        """Remember this build's feeds; forget feeds that were not made this time."""
        known = self._known
        changed = [(key, entry) for key, entry in self._now.items() if known.get(key) != entry]
        with self._store.transaction():
            self._store.put_many(FEEDS, changed)
            self._store.delete_many(FEEDS, sorted(set(self._known) - set(self._now)))


