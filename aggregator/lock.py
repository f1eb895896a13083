"""One build at a time: an exclusive lock held for the whole build.

Cron can start a build while the previous one is still running. Two builds writing
the same feeds and state store would interleave, so each build takes an OS file lock
beside the state file: flock(2) where there is one, the filelock package elsewhere
(Windows). flock is called directly because importing filelock costs about 50 ms,
an eighth of a rebuild that finds nothing to do (benchmarks/bench_build.py). The kernel releases it
when the process ends, even on SIGKILL, so a killed build never leaves a stale lock.
With `[state] url` the builders may sit on different machines: the lock is then a
PostgreSQL advisory lock, which the server frees when the holder's connection ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator.errors import AggregatorError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".lock"


class BuildLocked(AggregatorError):
    """Another build held the lock for longer than we were willing to wait."""

    def __init__(self, path: Path | str, waited: float) -> None:
        self.path = path
        self.waited = waited
        super().__init__(
            f"another build is running (it holds {path}); waited {waited:g} s "
            "([build] lock_timeout), nothing was done"
        )


def lock_path(state_path: Path) -> Path:
    """The lock lives beside the state file: `state.db` -> `state.db.lock`."""
    return state_path.with_name(state_path.name + LOCK_SUFFIX)


@contextmanager
def build_lock(
    path: Path, timeout: float, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the build lock at `path`; wait at most `timeout` seconds, else BuildLocked.

    `on_wait` is called once if the lock is busy, before waiting.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        with _filelock(path, timeout, on_wait):
            yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _flock(descriptor):
            if on_wait is not None:
                on_wait()
            deadline = time.monotonic() + timeout
            while not _flock(descriptor):
                if time.monotonic() >= deadline:
                    raise BuildLocked(path, timeout)
                time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)  # closing frees the lock too, as the end of the process does


POLL_SECONDS = 0.05  # how often a waiting build tries the lock again


def _flock(descriptor: int) -> bool:
    """Take the exclusive lock if it is free; False if another process holds it."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def _filelock(path: Path, timeout: float, on_wait: Callable[[], None] | None) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise BuildLocked(path, timeout) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def database_build_lock(
    url: str, timeout: float, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """The build lock of the PostgreSQL state at `url`, with build_lock's waiting."""
    from aggregator.state.postgres import BUILD_LOCK, advisory_lock

    with advisory_lock(url, BUILD_LOCK, timeout, on_wait) as held:
        if not held:
            raise BuildLocked(lock_holder(url), timeout)
        yield


def lock_holder(url: str) -> str:
    """How messages name the database build lock (never with a password)."""
    from aggregator.state.postgres import redact

    return f"the build lock of {redact(url)}"
