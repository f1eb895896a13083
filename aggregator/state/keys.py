"""How the state names and stamps local record files: the key of a source folder (a
digest of its absolute path), a file's stamp (size and mtime_ns), which the parse
cache checks, and a folder's listing, which the snapshot keeps and the incremental
decision compares. Pure values, apart from the caches, so that finding files
(sources/) and deciding (incremental.py) use them without loading anything else."""

from __future__ import annotations

import array
import hashlib
import struct
from collections.abc import Iterable

FILE_KEY = "file:"  # parse-cache keys of local files; other keys are not ours to drop
STAMP = struct.Struct("<qq")  # a file's stamp as the parse cache keeps it: size, mtime_ns


def folder_key(folder: str) -> str:
    """The key of a source folder (an absolute path): its files' keys are this plus
    their path inside it. A short digest stands for the folder's path, which every key
    would otherwise repeat (in the parse cache, its index, the snapshot and the story
    table)."""
    return FILE_KEY + hashlib.sha256(folder.encode()).hexdigest()[:12]


# One folder's record files as listed: their names joined by NUL (which no file name
# holds), their sizes and their mtime_ns as arrays of 64-bit ints. Compact (a million
# files take about 60 MB, where lists of strings and ints take about 300 MB), and two
# listings compare in C.
Listing = tuple[str, "array.array[int]", "array.array[int]"]


def listing(names: list[str], sizes: Iterable[int], mtimes: Iterable[int]) -> Listing:
    return "\0".join(names), array.array("q", sizes), array.array("q", mtimes)


def names_of(listed: Listing) -> list[str]:
    """The file names of a listing, in its order."""
    return listed[0].split("\0") if listed[0] else []
