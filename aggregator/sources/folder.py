"""Find record files in a source directory (recursively)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from operator import attrgetter
from pathlib import Path

from aggregator.state.parse_cache import STAMP

RECORD_SUFFIXES = frozenset({".md", ".markdown", ".yaml", ".yml", ".json"})
_SUFFIXES = tuple(RECORD_SUFFIXES)
_NAME = attrgetter("name")

FileEntry = tuple[str, bytes | None]  # the path and its stamp (None: no stat to be had)

OnSkip = Callable[[Path, str], None]


def iter_record_files(root: Path, on_skip: OnSkip | None = None) -> Iterator[Path]:
    """The record files under `root`, in a stable (sorted) order; see scan_record_files."""
    for path, _ in scan_record_files(root, on_skip):
        yield Path(path)


def scan_record_files(
    root: Path, on_skip: OnSkip | None = None, on_error: OnSkip | None = None
) -> list[FileEntry]:
    """Every record file under `root`, each with its stamp (`file_stamp`; None if no
    stat can be had: the file is then read anyway, to report why).

    Hidden files and folders are skipped (editors and VCS keep state there). Symbolic
    links are followed only while they lead somewhere inside `root`: a link out of the
    source (to /etc, to another user's files) is not read, and a folder reached twice
    (a link loop) is walked once. `on_skip(path, reason)` hears about each link left
    alone. Files of a folder come before its subfolders, each in name order.
    `on_error(folder, reason)` hears about each folder that cannot be listed (no
    permission, an unmounted share): its files are missing from the result.
    """
    found: list[FileEntry] = []
    real_root = os.path.realpath(root)
    _scan(str(root), real_root, found, set(), on_skip, on_error)
    return found


def _scan(
    folder: str,
    real_root: str,
    found: list[FileEntry],
    seen: set[str],
    on_skip: OnSkip | None,
    on_error: OnSkip | None = None,
) -> None:
    # This runs for every file on every build, so it is kept lean: one scandir per
    # folder gives names, types and (cached) stats.
    real_folder = os.path.realpath(folder)
    if real_folder in seen:
        return
    seen.add(real_folder)
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=_NAME)
    except OSError as exc:
        if on_error is not None:
            on_error(Path(folder), exc.strerror or str(exc))
        return
    folders = []
    pack = STAMP.pack
    for entry in entries:
        name = entry.name
        if name[0] == "." or (entry.is_symlink() and not _inside(entry.path, real_root, on_skip)):
            continue
        try:
            is_folder = entry.is_dir()
        except OSError:
            is_folder = False
        if is_folder:
            folders.append(entry.path)
        elif name.lower().endswith(_SUFFIXES):
            try:
                info = entry.stat()
                found.append((entry.path, pack(info.st_size, info.st_mtime_ns)))
            except OSError:
                found.append((entry.path, None))
    for path in folders:
        _scan(path, real_root, found, seen, on_skip, on_error)


def _inside(path: str, real_root: str, on_skip: OnSkip | None) -> bool:
    """True if the link at `path` leads inside the source folder."""
    target = os.path.realpath(path)
    if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
        return True
    if on_skip is not None:
        on_skip(Path(path), f"symbolic link to {target}, outside the source folder; not followed")
    return False
