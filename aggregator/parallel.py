"""Worker processes for one build: they parse record files, then render feeds.

The pool starts when a stage has enough work to pay for it and stays up for the rest
of the build, so a cold build forks once and renders on the processes that parsed.
Parse workers return each file's result already encoded for the parse cache: bytes
cross the process boundary far faster than pickled dataclasses, and the cache wants
them anyway.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from aggregator.errors import WorkerDied

if TYPE_CHECKING:  # multiprocessing loads when a pool starts: most rebuilds start none
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.context import BaseContext

    from aggregator.model import DocumentResult

Job = TypeVar("Job")
Result = TypeVar("Result")
Loader = Callable[[str], "DocumentResult"]  # reads and parses one file; never raises
Parsed = tuple[bytes, bool]  # encoded result, whether it may be cached

MIN_FILES_PER_WORKER = 200  # below this a pool costs more than it saves
CHUNK_FILES = 500  # small enough to spread the load, big enough to cost little
PARENT_CHECK_SECONDS = 0.5  # how soon a worker of a killed build exits


def worker_count(configured: int) -> int:
    """`[build] workers`: 0 means one per core this process may use."""
    if configured:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _start_method() -> BaseContext:
    """fork where it is safe, on Linux from the main thread: workers start at once, with
    everything already imported. From another thread (`serve --build-every` builds on
    one) a lock held elsewhere at the moment of forking could hang a worker, and other
    systems advise against fork: there, workers are fresh interpreters."""
    import multiprocessing

    if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Workers start with Ctrl-C blocked, so that none reaches them before they ignore it
    (a worker interrupted while starting prints a traceback). The build still gets it."""
    if not hasattr(signal, "pthread_sigmask"):  # not on every platform
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _start_worker(parent: int) -> None:
    # Ctrl-C is for the build, which stops its workers itself (without a traceback each).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    gc.freeze()  # what was inherited is never scanned (nor copied on write by a scan)
    gc.enable()  # a worker's garbage is short-lived; the parent may have paused collection
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose build is killed would otherwise wait for work forever: it leaves
    once it has been handed to another parent."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


class WorkerPool:
    """Up to `workers` processes, started on first use and stopped on exit."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            # Jobs not yet started are dropped; each worker finishes the one it is on (a
            # fraction of a second), then exits. A broken pool has failed them already
            # (and Python 3.11 trips over a job cancelled twice).
            self._executor.shutdown(cancel_futures=kind is not WorkerDied)
            self._executor = None

    def close(self) -> None:
        """Stop the processes once their work is done (they start again if more comes)."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def start(self) -> None:
        """Start the processes now rather than with the first jobs: a worker starts as
        a copy of this process, so the sooner, the less of it each one holds."""
        with _ctrl_c_held():
            self._pool().submit(int)  # the processes start with the first task

    def pays(self, jobs: int, min_jobs_per_worker: int) -> bool:
        """True if `jobs` should go to the workers: they run already, or there is
        enough work for at least two of them."""
        if self._executor is not None:
            return True
        return min(self.workers, jobs // min_jobs_per_worker) > 1

    def map(
        self, function: Callable[[Job], Result], jobs: Sequence[Job], chunk: int = 1
    ) -> Iterator[Result]:
        """`function(job)` for every job, in order, on the workers, `chunk` jobs to a
        task. All tasks are handed out at once, so the caller can do other work before
        reading the results."""
        try:
            with _ctrl_c_held():  # the first tasks start the processes
                pool = self._pool()
                tasks = [pool.submit(_run_jobs, function, jobs[start : start + chunk])
                         for start in range(0, len(jobs), chunk)]  # fmt: skip
        except _broken():  # a worker died before these jobs were handed out
            raise WorkerDied(self.workers) from None
        return self._results(tasks)

    def _pool(self) -> ProcessPoolExecutor:
        from concurrent.futures import ProcessPoolExecutor

        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=_start_method(),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        return self._executor

    def _results(self, tasks: list[Future[list[Result]]]) -> Iterator[Result]:
        # Unlike Executor.map, leaves the tasks alone when the caller stops early:
        # __exit__ drops what was not started. Each task is let go once read, so its
        # results do not stay in memory until the last one is read.
        pending = deque(tasks)
        del tasks
        while pending:
            try:
                results = pending.popleft().result()
            except _broken():
                raise WorkerDied(self.workers) from None
            yield from results


def _run_jobs(function: Callable[[Job], Result], jobs: Sequence[Job]) -> list[Result]:
    return [function(job) for job in jobs]


def parse_one(load: Loader, path: str) -> Parsed:
    # Imported here: a rebuild that parses nothing needs neither (nor the records' model).
    from aggregator.state.parse_cache import cacheable
    from aggregator.state.record_codec import encode_result

    result = load(path)
    return encode_result(result), cacheable(result)


def _parse_chunk(load: Loader, paths: Sequence[str]) -> list[Parsed]:
    return [parse_one(load, path) for path in paths]


def parse_files(load: Loader, paths: Sequence[str], pool: WorkerPool) -> Iterator[Parsed]:
    """Yield the parse of each path, in order; on the workers when it pays."""
    return map_files(partial(_parse_chunk, load), paths, pool)


def map_files(
    job: Callable[[Sequence[str]], list[Result]], paths: Sequence[str], pool: WorkerPool
) -> Iterator[Result]:
    """Yield `job`'s result for each path, in order, `job` taking a chunk of paths at a
    time; on the workers when it pays."""
    if not pool.pays(len(paths), MIN_FILES_PER_WORKER):
        for start in range(0, len(paths), CHUNK_FILES):
            yield from job(paths[start : start + CHUNK_FILES])
        return
    size = max(1, min(CHUNK_FILES, len(paths) // (4 * pool.workers)))
    chunks = [paths[start : start + size] for start in range(0, len(paths), size)]
    for results in pool.map(job, chunks):
        yield from results


def _broken() -> type[Exception]:
    from concurrent.futures.process import BrokenProcessPool

    return BrokenProcessPool
