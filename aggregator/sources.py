"""Find record files in a source directory (recursively)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

RECORD_SUFFIXES = frozenset({".md", ".markdown", ".yaml", ".yml", ".json"})


def iter_record_files(
    root: Path, on_skip: Callable[[Path, str], None] | None = None
) -> Iterator[Path]:
    """Yield record files under `root` in a stable (sorted) order.

    Hidden files and folders are skipped (editors and VCS keep state there). Symbolic
    links are followed only while they lead to somewhere inside `root`: a link out of
    the source (to /etc, to another user's files) is not read, and a folder reached
    twice (a link loop) is walked once. `on_skip(path, reason)` hears about each link
    left alone.
    """
    real_root = os.path.realpath(root)
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        if real_dir in seen:  # reached again through a link: a loop or a duplicate
            dirnames[:] = []
            continue
        seen.add(real_dir)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and _inside(Path(dirpath, d), real_root, on_skip)
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() not in RECORD_SUFFIXES:
                continue
            path = Path(dirpath, name)
            if _inside(path, real_root, on_skip):
                yield path


def _inside(path: Path, real_root: str, on_skip: Callable[[Path, str], None] | None) -> bool:
    """True unless `path` is a link whose target lies outside the source (or is broken)."""
    if not path.is_symlink():
        return True
    target = os.path.realpath(path)
    if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
        return True
    if on_skip is not None:
        on_skip(path, f"symbolic link to {target}, outside the source folder; not followed")
    return False
