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
