"""Parse many record files on every core.

Workers return each file's result already encoded for the parse cache: bytes cross the
process boundary far faster than pickled dataclasses, and the cache wants them anyway.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from aggregator.cache import cacheable, encode_result
from aggregator.records import DocumentResult

Loader = Callable[[str], DocumentResult]  # reads and parses one file; never raises
Parsed = tuple[bytes, bool]  # encoded result, whether it may be cached

MIN_FILES_PER_WORKER = 200  # below this a pool costs more than it saves
CHUNK_FILES = 500  # small enough to spread the load, big enough to cost little


def worker_count(configured: int) -> int:
    """`[build] workers`: 0 means one per core this process may use."""
    if configured:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def parse_one(load: Loader, path: str) -> Parsed:
    result = load(path)
    return encode_result(result), cacheable(result)


def _parse_chunk(load: Loader, paths: Sequence[str]) -> list[Parsed]:
    return [parse_one(load, path) for path in paths]


def _start_worker() -> None:
    gc.enable()  # a worker's garbage is short-lived; the parent may have paused collection


def parse_files(load: Loader, paths: Sequence[str], workers: int) -> Iterator[Parsed]:
    """Yield the parse of each path, in order; in a process pool when it pays."""
    workers = min(workers, len(paths) // MIN_FILES_PER_WORKER)
    if workers <= 1:
        for path in paths:
            yield parse_one(load, path)
        return
    size = max(1, min(CHUNK_FILES, len(paths) // (4 * workers)))
    chunks = [paths[start : start + size] for start in range(0, len(paths), size)]
    with ProcessPoolExecutor(workers, initializer=_start_worker) as pool:
        for parsed in pool.map(_parse_chunk, [load] * len(chunks), chunks):
            yield from parsed
