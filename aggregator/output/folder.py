"""The local output folder: atomic writes of files whose bytes changed, stale temp files
of killed runs, and removal of files a build made that are no longer made."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from aggregator.errors import AggregatorError

TEMP_SUFFIX = ".aggregator-tmp"


def write_file(output: Path, relative: str, data: bytes) -> tuple[Path, bool, bytes]:
    """On a writer thread (the path checks, the write and the hash all wait on the system,
    away from the thread that collects rendered files): the file's path, whether its
    bytes changed, and their SHA-256 for the feed cache. UnsafePath if it would leave
    the output folder."""
    target = target_path(output, relative)
    return target, write_if_changed(target, data), hashlib.sha256(data).digest()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` to `path` unless it already holds exactly those bytes.

    The new content goes to a temp file in the same folder, is flushed to disk and
    then renamed over the old file, so readers and web servers see either the old
    or the new file, never a partial one. Returns True if the file was written.
    """
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    created = []  # the folders this write makes, deepest first
    for folder in path.parents:
        if folder.exists():
            break
        created.append(folder)
    # Imported here (with random): a rebuild that writes nothing needs neither.
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                        dir=path.parent)  # fmt: skip
    except BaseException:
        _remove_empty(created)
        raise
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes 0600; web servers must be able to read feeds
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        _remove_empty(created)  # a failed write leaves no empty folder behind
        raise
    return True


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this write created, deepest first, while they are empty (another
    writer may have put a file in one meanwhile: it stays)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def remove_stale_temp_files(root: Path) -> int:
    """Delete temp files left by a run that was killed mid-write.

    Only our own temp names (`.NAME.XXXX.aggregator-tmp`) are touched, and linked
    folders are not entered, so nothing outside the output folder is ever deleted.
    """
    removed = 0
    if not root.is_dir():
        return 0
    for dirpath, _dirnames, filenames in os.walk(root):  # followlinks=False
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed


def remove_if_unchanged(root: Path, relative: str, sha256: bytes, size: int) -> bool:
    """Delete a file an earlier build wrote, if it still holds exactly those bytes (so a
    file someone else changed or put there is left alone); then drop emptied folders."""
    try:
        path = target_path(root, relative)
        if path.is_symlink() or path.stat().st_size != size:
            return False
        if hashlib.sha256(path.read_bytes()).digest() != sha256:
            return False
        path.unlink()
    except (FileNotFoundError, UnsafePath):
        return False
    real_root = root.resolve()
    for folder in path.parents:
        if folder.resolve() == real_root:
            break
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            break
    return True


class UnsafePath(AggregatorError):
    """A feed file would land outside the output folder."""

    def __init__(self, root: Path, relative: str, resolved: Path) -> None:
        self.root = root
        self.relative = relative
        self.reason = f"resolves to {resolved}, outside the output folder {root}"
        super().__init__(f"{root / relative}: {self.reason}")


def target_path(root: Path, relative: str) -> Path:
    """`root / relative`, checked to resolve inside `root` (following any links already
    there), else UnsafePath. Topic slugs are safe by construction; this is the last guard
    against a path-traversing name or a link planted in the output folder."""
    target = root / relative
    real_root = root.resolve()
    resolved = target.resolve()
    if resolved == real_root or real_root not in resolved.parents:
        raise UnsafePath(root, relative, resolved)
    return target
