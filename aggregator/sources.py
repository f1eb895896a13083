"""Find record files in a source directory (recursively)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

RECORD_SUFFIXES = frozenset({".md", ".markdown", ".yaml", ".yml", ".json"})


def iter_record_files(root: Path) -> Iterator[Path]:
    """Yield record files under `root` in a stable (sorted) order.

    Hidden files and folders are skipped (editors and VCS keep state there).
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in RECORD_SUFFIXES:
                yield Path(dirpath, name)


def scan_record_files(root: Path) -> list[tuple[str, os.stat_result | None]]:
    """The files `iter_record_files` yields, in the same order, each with its stat
    (None if it cannot be had: the file is then read anyway, to report why)."""
    found: list[tuple[str, os.stat_result | None]] = []
    _scan(str(root), found, tuple(RECORD_SUFFIXES))
    return found


def _scan(
    folder: str, found: list[tuple[str, os.stat_result | None]], suffixes: tuple[str, ...]
) -> None:
    # One os.scandir call gives names and types; like os.walk, links to folders are
    # not followed. This runs for every file on every build, so it is kept lean.
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return
    folders = []
    for entry in entries:
        name = entry.name
        if name[0] == ".":
            continue
        try:
            is_folder = entry.is_dir()
        except OSError:
            is_folder = False
        if is_folder:
            if not entry.is_symlink():
                folders.append(entry.path)
        elif name.lower().endswith(suffixes):
            try:
                found.append((entry.path, entry.stat()))
            except OSError:
                found.append((entry.path, None))
    for path in folders:
        _scan(path, found, suffixes)
