"""Find record files in a source directory (recursively).

`list_folders` is what every build runs first, over every file: one listing per
folder, one stat per record file, each folder's files kept in the order the OS lists
them (a directory that did not change lists the same way again), so that the next
step can compare them with the last build's in C (aggregator.incremental). The
sorted order that problems and clustering follow is made from it only when a build
has work to do (`ordered`).
"""

from __future__ import annotations

import array
import marshal
import os
import stat as stat_module
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from aggregator.state.keys import STAMP, Listing, names_of

RECORD_SUFFIXES = frozenset({".md", ".markdown", ".yaml", ".yml", ".json"})
_SUFFIXES = tuple(RECORD_SUFFIXES)
NO_STAT = -1  # size and mtime of a file found without a stat
# The size its stat gives a record file's name that is no regular file (a symbolic link,
# a folder named like a record, a pipe): `list_folders` looks at each of these again.
NOT_REGULAR = -2
# A folder with more names than this that are neither hidden nor record files (images
# beside the records, say) is listed with their types (scandir), not a stat for each.
FEW_OTHERS = 256

FileEntry = tuple[str, bytes | None]  # a path and its STAMP (None: no stat to be had)

OnSkip = Callable[[Path, str], None]


def iter_record_files(root: Path, on_skip: OnSkip | None = None) -> Iterator[Path]:
    """The record files under `root`, in a stable (sorted) order; see scan_record_files."""
    for path, _ in scan_record_files(root, on_skip):
        yield Path(path)


def scan_record_files(
    root: Path, on_skip: OnSkip | None = None, on_error: OnSkip | None = None
) -> list[FileEntry]:
    """Every record file under `root` in sorted order (`ordered`), each with its stamp
    (None if no stat can be had: the file is then read anyway, to report why)."""
    return ordered(str(root), list_folders(root, on_skip, on_error))


def list_folders(
    root: Path,
    on_skip: OnSkip | None = None,
    on_error: OnSkip | None = None,
    *,
    split_at: int | None = None,
    parallel: bool = True,
) -> dict[str, Listing]:
    """Every folder under `root` that holds record files, by its path inside `root`
    ("" for `root` itself, os.sep between parts), with its files as listed.

    Hidden files and folders are skipped (editors and VCS keep state there). Symbolic
    links are followed only while they lead somewhere inside `root`: a link out of the
    source (to /etc, to another user's files) is not read, and a folder reached twice
    (a link loop) is walked once. `on_skip(path, reason)` hears about each link left
    alone. `on_error(folder, reason)` hears about each folder that cannot be listed (no
    permission, an unmounted share): its files are missing from the result.
    With `parallel` a forked process lists half the subfolders of `root`, and from
    `split_at` files (default SPLIT_AT) makes half the stats; the result is the same.
    """
    named: dict[str, tuple[str, list[str]]] = {}
    real_root = os.path.realpath(root)
    top = str(root)
    cut = len(top.rstrip(os.sep)) + 1
    seen: set[str] = set()
    below = _list(top, cut, real_root, named, seen, on_skip, on_error, descend=False)
    # Listing a folder costs about half of what its stats cost: with two or more
    # subfolders, a forked process lists the later half of them meanwhile.
    forks = parallel and hasattr(os, "fork")
    theirs = below[len(below) // 2 :] if forks and len(below) >= 2 else []
    child = _list_in_child(theirs, cut, real_root, seen) if theirs else None
    for path in below[: len(below) - len(theirs)] if child is not None else below:
        _list(path, cut, real_root, named, seen, on_skip, on_error)
    if child is not None:
        listed = _collect_listing(child)
        if listed is None or not seen.isdisjoint(listed[2]):
            for path in theirs:  # the child failed, or both reached one folder (links)
                _list(path, cut, real_root, named, seen, on_skip, on_error)
        else:
            found, events, _ = listed
            named.update((folder, (path, names)) for folder, path, names in found)
            for skipped, path, reason in events:
                report = on_skip if skipped else on_error
                if report is not None:
                    report(Path(path), reason)
            seen.update(listed[2])
    split = (SPLIT_AT if split_at is None else split_at) if forks else 1 << 62
    listings: dict[str, Listing] = {}
    while named:  # again for the folders found among the names that were no files
        stats = _stat_all([(path, names) for path, names in named.values()], split)
        more: list[str] = []
        for index, (folder, (path, names)) in enumerate(named.items()):
            sizes, mtimes = stats[index]
            if NOT_REGULAR in sizes:
                names, sizes, mtimes = _irregular(path, names, sizes, mtimes, real_root, on_skip,
                                                  more)  # fmt: skip
            if names:
                listings[folder] = ("\0".join(names), sizes, mtimes)
        named = {}
        for path in more:
            _list(path, cut, real_root, named, seen, on_skip, on_error)
    return listings


def _list(
    folder: str,
    cut: int,
    real_root: str,
    found: dict[str, tuple[str, list[str]]],
    seen: set[str],
    on_skip: OnSkip | None,
    on_error: OnSkip | None,
    *,
    descend: bool = True,
) -> list[str]:
    """The record files' names of `folder` and its subfolders, into `found` (by the
    folder's path inside the source: its path, and the names); with `descend=False`
    only the folder's own, and its subfolders are returned."""
    # This runs for every file of every build, so it is kept lean: the names alone
    # (listdir makes no object per entry), a record file's type told by the stat its
    # stamp takes anyway (`_stats`); nothing is sorted.
    real_folder = os.path.realpath(folder)
    if real_folder in seen:
        return []
    seen.add(real_folder)
    try:
        listed = os.listdir(folder)
    except OSError as exc:
        if on_error is not None:
            on_error(Path(folder), exc.strerror or str(exc))
        return []
    names = [name for name in listed if name.lower().endswith(_SUFFIXES) and name[0] != "."]
    others = [] if len(names) == len(listed) else [
        name for name in listed if name[0] != "." and not name.lower().endswith(_SUFFIXES)
    ]  # fmt: skip
    if len(others) > FEW_OTHERS:
        names, folders = _by_type(folder, real_root, on_skip, on_error)
    else:
        folders = [path for path in map(partial(os.path.join, folder), others)
                   if _is_folder(path, real_root, on_skip)]  # fmt: skip
    if names:
        found[folder[cut:]] = (folder, names)
    if not descend:
        return folders
    for path in folders:
        _list(path, cut, real_root, found, seen, on_skip, on_error)
    return []


def _is_folder(path: str, real_root: str, on_skip: OnSkip | None) -> bool:
    """Whether a name that is no record file is a folder to walk (a link only to a
    folder inside the source)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat_module.S_ISLNK(mode):
        return _inside(path, real_root, on_skip) and os.path.isdir(path)
    return stat_module.S_ISDIR(mode)


def _irregular(
    folder: str,
    names: list[str],
    sizes: array.array[int],
    mtimes: array.array[int],
    real_root: str,
    on_skip: OnSkip | None,
    below: list[str],
) -> tuple[list[str], array.array[int], array.array[int]]:
    """A folder's record files once its names that are no regular files are told
    apart, as a listing by type does: a link out of the source is left out, and so is
    a folder (into `below`, to be walked); a link inside is stamped by what it leads
    to (none if it leads nowhere); a pipe or the like stays, to be read and reported."""
    kept: list[str] = []
    kept_sizes, kept_mtimes = array.array("q"), array.array("q")
    for name, size, mtime in zip(names, sizes, mtimes, strict=True):
        if size == NOT_REGULAR:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                mode = 0  # gone since its stat: read as it is, to report why
            link = stat_module.S_ISLNK(mode)
            if link and not _inside(path, real_root, on_skip):
                continue
            if stat_module.S_ISDIR(mode) or (link and os.path.isdir(path)):
                below.append(path)
                continue
            try:
                info = os.stat(path)
                size, mtime = info.st_size, info.st_mtime_ns
            except (OSError, ValueError):
                size = mtime = NO_STAT
        kept.append(name)
        kept_sizes.append(size)
        kept_mtimes.append(mtime)
    return kept, kept_sizes, kept_mtimes


def _by_type(
    folder: str, real_root: str, on_skip: OnSkip | None, on_error: OnSkip | None
) -> tuple[list[str], list[str]]:
    """A folder's record file names and subfolders, told apart by the types its
    listing gives (scandir): for a folder of many other files."""
    names: list[str] = []
    folders = []
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                name = entry.name
                if name[0] == ".":
                    continue
                if entry.is_file(follow_symlinks=False):
                    if name.lower().endswith(_SUFFIXES):
                        names.append(name)
                    continue
                if entry.is_symlink() and not _inside(entry.path, real_root, on_skip):
                    continue
                try:
                    is_folder = entry.is_dir()
                except OSError:
                    is_folder = False
                if is_folder:
                    folders.append(entry.path)
                elif name.lower().endswith(_SUFFIXES):
                    names.append(name)  # a link to a file inside, or a dangling link
    except OSError as exc:
        if on_error is not None:
            on_error(Path(folder), exc.strerror or str(exc))
        return [], []
    return names, folders


def _list_in_child(
    folders: list[str], cut: int, real_root: str, seen: set[str]
) -> tuple[int, int] | None:
    """A forked process that lists these folders (`_list`): in marshal, what it found,
    what it reported and every folder it reached."""

    def work() -> bytes:
        found: dict[str, tuple[str, list[str]]] = {}
        events: list[tuple[bool, str, str]] = []
        reached = set(seen)
        for path in folders:
            _list(path, cut, real_root, found, reached,
                  lambda p, reason: events.append((True, str(p), reason)),
                  lambda p, reason: events.append((False, str(p), reason)))  # fmt: skip
        return marshal.dumps(([(k, v[0], v[1]) for k, v in found.items()], events,
                              sorted(reached - seen)))  # fmt: skip

    return _in_child(work)


def _collect_listing(child: tuple[int, int]) -> Any:
    """What `_list_in_child` found; None if it failed."""
    data = _child_result(child)
    try:
        return None if data is None else marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None


def _in_child(work: Callable[[], bytes]) -> tuple[int, int] | None:
    """A forked process that runs `work` and writes what it gives to a pipe: (its pid,
    the read end); None if no process could be started."""
    try:
        read, write = os.pipe()
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the child: work, write, and leave without running any cleanup
        code = 0
        try:
            os.close(read)
            view = memoryview(work())
            while view:
                view = view[os.write(write, view) :]
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write)
    return pid, read


def _child_result(child: tuple[int, int]) -> bytes | None:
    """All that an `_in_child` process wrote, once it has ended; None if it failed."""
    pid, read = child
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    return data if status == 0 else None


SPLIT_AT = 20_000  # files from which a second process shares the stats (see _stat_all)


def _stat_all(
    folders: list[tuple[str, list[str]]], split_at: int
) -> list[tuple[array.array[int], array.array[int]]]:
    """(sizes, mtime_ns) of the named files of each folder (NO_STAT where a file has
    none).

    A stat is a system call, and at 100 000 files their time is most of a build that
    finds nothing changed; from SPLIT_AT files, a forked process stats the second half
    while this one stats the first (benchmarks/bench_build.py, "no change"). Should
    it fail, this process stats its half too.
    """
    jobs = [(path, name) for path, names in folders for name in names]
    half = len(jobs) // 2 if len(jobs) >= split_at and hasattr(os, "fork") else len(jobs)
    child = _stat_in_child(jobs[half:]) if half < len(jobs) else None
    stamps = _stats(jobs[:half])
    stamps.extend(_stats(jobs[half:]) if child is None else _collect(child, jobs[half:]))
    result = []
    at = 0
    for _, names in folders:
        part = stamps[2 * at : 2 * (at + len(names))]
        result.append((part[0::2], part[1::2]))
        at += len(names)
    return result


def _stats(jobs: list[tuple[str, str]]) -> array.array[int]:
    """size, mtime_ns, size, mtime_ns, ... of each (folder, name); NOT_REGULAR for a
    name that is no regular file (the stat does not follow links)."""
    out = array.array("q")
    append, stat, sep, regular = out.append, os.stat, os.sep, stat_module.S_ISREG
    # A stat by name in an open folder (fstatat) skips walking the folder's path again
    # for every file (benchmarks/bench_scale.py, "no change": 4.7 to 5.0 s by full path,
    # 4.1 to 4.4 s so, at a million files). A job's folder is one str object per folder.
    by_fd = _STAT_AT and bool(jobs)
    folder_fd = -1
    current: str | None = None
    try:
        for folder, name in jobs:
            if by_fd and folder is not current:
                if folder_fd >= 0:
                    os.close(folder_fd)
                current = folder
                try:
                    folder_fd = os.open(folder, _FOLDER_FLAGS)
                except OSError:
                    folder_fd = -1  # its files are statted by path: each gives its reason
            try:
                info = (stat(name, dir_fd=folder_fd, follow_symlinks=False) if folder_fd >= 0
                        else stat(folder + sep + name, follow_symlinks=False))  # fmt: skip
                if regular(info.st_mode):
                    append(info.st_size)
                    append(info.st_mtime_ns)
                else:
                    append(NOT_REGULAR)
                    append(NOT_REGULAR)
            except (OSError, ValueError):
                append(NO_STAT)
                append(NO_STAT)
    finally:
        if folder_fd >= 0:
            os.close(folder_fd)
    return out


_STAT_AT = os.stat in os.supports_dir_fd
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _stat_in_child(jobs: list[tuple[str, str]]) -> tuple[int, int] | None:
    """A forked process that makes `_stats(jobs)`."""
    return _in_child(lambda: _stats(jobs).tobytes())


def _collect(child: tuple[int, int], jobs: list[tuple[str, str]]) -> array.array[int]:
    data = _child_result(child)
    stamps = array.array("q")
    if data is not None and len(data) == 16 * len(jobs):
        stamps.frombytes(data)
        return stamps
    return _stats(jobs)  # the child failed: its half again, here


def folder_order(folder: str) -> tuple[str, ...]:
    """Sort key of a folder (its path inside the source): a folder's own files come
    before its subfolders, subfolders in name order (a walk in sorted order)."""
    return tuple(folder.split(os.sep)) if folder else ()


def ordered(root: str, listings: dict[str, Listing]) -> list[FileEntry]:
    """The files of `listings` (under `root`) in sorted order: folder by folder
    (`folder_order`), each folder's files by name."""
    base = root.rstrip(os.sep) + os.sep
    files: list[FileEntry] = []
    pack = STAMP.pack
    for folder in sorted(listings, key=folder_order):
        _, sizes, mtimes = listings[folder]
        names = names_of(listings[folder])
        prefix = base + folder + os.sep if folder else base
        for name, size, mtime in sorted(zip(names, sizes, mtimes, strict=True)):
            files.append((prefix + name, None if size == NO_STAT else pack(size, mtime)))
    return files


def _inside(path: str, real_root: str, on_skip: OnSkip | None) -> bool:
    """True if the link at `path` leads inside the source folder."""
    target = os.path.realpath(path)
    if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
        return True
    if on_skip is not None:
        on_skip(Path(path), f"symbolic link to {target}, outside the source folder; not followed")
    return False
