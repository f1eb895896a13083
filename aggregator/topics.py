"""Topic identity, display names and file-system slugs."""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Iterable

from slugify import slugify

MAX_SLUG_LENGTH = 60
# Names Windows (and so SMB shares) cannot use as a file or folder, whatever the extension.
WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"{port}{n}" for port in ("com", "lpt") for n in range(1, 10))}
)


@functools.lru_cache(maxsize=1 << 16)  # a build asks about the same few names very often
def topic_key(name: str) -> str:
    """Names that differ only in case or spacing are one topic."""
    return " ".join(name.split()).casefold()


def display_names(names: Iterable[str] | Counter[str]) -> dict[str, str]:
    """Map each topic key to its most common spelling (ties: the alphabetically first)."""
    return commonest(spelling_counts(names))


def spelling_counts(names: Iterable[str] | Counter[str]) -> dict[str, dict[str, int]]:
    """Topic key -> spelling -> how often it is used (`names` may come counted)."""
    counts: dict[str, dict[str, int]] = {}
    counted = names if isinstance(names, Counter) else Counter(names)
    for name, count in counted.items():  # count spellings first: far fewer keys
        spellings = counts.setdefault(topic_key(name), {})
        spellings[name] = spellings.get(name, 0) + count
    return counts


def commonest(counts: dict[str, dict[str, int]]) -> dict[str, str]:
    return {
        key: min(spellings.items(), key=lambda item: (-item[1], item[0]))[0]
        for key, spellings in counts.items()
    }


def assign_slugs(keys: Iterable[str]) -> dict[str, str]:
    """A unique slug per topic key: lowercase ASCII and hyphens, safe as one path segment.

    Windows' reserved names (`con`, `nul`, `com1`, ...) get a suffix, so the output can be
    copied to Windows or an SMB share. The topic whose key sorts first keeps the plain
    slug; any other topic with the same slug gets a suffix derived from its own key, so
    its slug never depends on which other topics exist.
    """
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for key in sorted(set(keys)):
        base = slugify(key, max_length=MAX_SLUG_LENGTH, word_boundary=True) or "topic"
        slug = base
        digest = hashlib.sha1(key.encode()).hexdigest()
        length = 8
        while slug in taken or slug == "topic" or slug in WINDOWS_RESERVED:
            # Another topic's plain slug may look like a suffixed one: lengthen until free.
            slug = f"{base}-{digest[:length]}"
            length += 4
        taken.add(slug)
        slugs[key] = slug
    return slugs
