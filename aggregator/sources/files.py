"""Find the record files of every `path` source: their listings, stamps and cache keys.

One pass over each folder (sources/folder.py) gives every file's stamp, folder by
folder in the order the OS lists them: what aggregator.incremental compares with the
last build's listings. The keys name the source folder by a digest of its absolute
path (`folder_key`) and the file by its path inside it, so builds started from any
folder share the cache. The files in sorted order (`FoundFiles.files`, `keys`,
`sources`, `spans`) are made only when a build reads, parses or reports them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aggregator.config import Config, SourceConfig, locate
from aggregator.errors import ConfigError, ConfigErrors, Problem
from aggregator.sources.folder import NO_STAT, folder_order, list_folders
from aggregator.state.keys import STAMP, Listing, folder_key, listing, names_of


@dataclass(frozen=True, slots=True)
class SourceSpan:
    """One `path` source: where its files are in FoundFiles.files, and its key prefix."""

    index: int  # in config.sources
    start: int
    end: int
    prefix: str  # the folder's key (folder_key), with a trailing separator
    root: str  # the folder as configured (origins are shown relative to it)


class FoundFiles:
    """The record files of every `path` source: by folder as listed (`listings`, by the
    folder's key), and in sorted order with their stamps and keys (made when asked)."""

    __slots__ = (
        "_ordered",
        "_roots",
        "count",
        "excluded",
        "listings",
        "skipped",
        "unreadable",
        "unstamped",
    )  # fmt: skip

    def __init__(self) -> None:
        self.listings: dict[str, Listing] = {}  # folder key (with a trailing separator)
        self.skipped: list[Problem] = []  # links not followed (warnings), unreadable folders
        self.excluded = 0  # files left out by the sources' globs
        self.unreadable: list[tuple[str, str, int]] = []  # key prefix, root, source index
        self.count = 0  # files in all
        self.unstamped: list[str] = []  # keys of files found without a stat
        self._roots: list[tuple[int, str, str]] = []  # source index, key prefix, root
        self._ordered: tuple[list[tuple[str, bytes | None]] | None, list[str], list[int],
                             list[SourceSpan]] | None = None  # fmt: skip

    @property
    def prefixes(self) -> list[str]:
        """Each `path` source's key prefix, in config order."""
        return [prefix for _, prefix, _ in self._roots]

    # --- one file by its key (no sorting) ------------------------------------------------
    def _root_of(self, key: str) -> tuple[int, int, str, str] | None:
        """The source folder holding the file of this key: its place among the `path`
        sources, its index in config.sources, its key prefix and its root."""
        for position, (index, prefix, root) in enumerate(self._roots):
            if key.startswith(prefix):
                return position, index, prefix, root
        return None

    def span_of(self, key: str) -> SourceSpan | None:
        """The source whose folder holds the file of this key (its span in `files` is
        empty unless the sorted files were made)."""
        found = self._root_of(key)
        if found is None:
            return None
        position, index, prefix, root = found
        if self._ordered is not None:
            return self._ordered[3][position]
        return SourceSpan(index, 0, 0, prefix, root)

    def source_of(self, key: str) -> int:
        """The index in config.sources of the source holding this key (-1: none)."""
        found = self._root_of(key)
        return -1 if found is None else found[1]

    def path_of(self, key: str) -> str:
        """The path of a file by its key, as found (relative to where the build runs if
        its source is), also for a file that is gone."""
        found = self._root_of(key)
        if found is None:
            raise KeyError(key)
        _, _, prefix, root = found
        return root.rstrip(os.sep) + os.sep + key[len(prefix) :]

    def order_of(self, key: str) -> tuple[object, ...]:
        """Sort key of a file's key: the order `files` lists it in (sources in config
        order, then folder by folder, each folder's files by name)."""
        found = self._root_of(key)
        if found is None:
            return len(self._roots), (), key
        folder, _, name = key[len(found[2]) :].rpartition(os.sep)
        return found[0], folder_order(folder), name

    def order_of_path(self, path: str) -> tuple[object, ...]:
        """`order_of` for a file by its path (as `path_of` gives it)."""
        for _, prefix, root in self._roots:
            base = root.rstrip(os.sep) + os.sep
            if path.startswith(base):
                return self.order_of(prefix + path[len(base) :])
        return len(self._roots), (), path

    # --- every file in sorted order ------------------------------------------------------
    @property
    def files(self) -> list[tuple[str, bytes | None]]:
        """Every file's path and stamp, in sorted order."""
        files = self._sorted()[0]
        if files is None:
            raise RuntimeError("the files' paths and stamps were let go of once read")
        return files

    def let_go_of_stamps(self) -> None:
        """Forget every file's (path, stamp), keeping the keys: a build that has read its
        files needs no more of them (at a million files, about 120 MB at the cold
        build's peak: benchmarks/bench_scale.py)."""
        if self._ordered is not None:
            self._ordered = (None, *self._ordered[1:])

    @property
    def keys(self) -> list[str]:
        return self._sorted()[1]

    @property
    def sources(self) -> list[int]:
        """Each file's index in config.sources."""
        return self._sorted()[2]

    @property
    def spans(self) -> list[SourceSpan]:
        return self._sorted()[3]

    def _sorted(
        self,
    ) -> tuple[list[tuple[str, bytes | None]] | None, list[str], list[int], list[SourceSpan]]:
        if self._ordered is None:
            files: list[tuple[str, bytes | None]] = []
            keys: list[str] = []
            sources: list[int] = []
            spans: list[SourceSpan] = []
            for index, prefix, root in self._roots:
                start = len(files)
                base = root.rstrip(os.sep) + os.sep
                folders = [k for k in self.listings if k.startswith(prefix)]
                folders.sort(key=lambda k: folder_order(k[len(prefix) : -1]))
                for folder in folders:
                    _, sizes, mtimes = self.listings[folder]
                    names = names_of(self.listings[folder])
                    inside = folder[len(prefix) :]
                    for name, size, mtime in sorted(zip(names, sizes, mtimes, strict=True)):
                        files.append((base + inside + name, file_stamp(size, mtime)))
                        keys.append(folder + name)
                sources.extend([index] * (len(files) - start))
                spans.append(SourceSpan(index, start, len(files), prefix, root))
            self._ordered = (files, keys, sources, spans)
        return self._ordered

    # --- finding ---------------------------------------------------------------------
    def add_source(self, source: SourceConfig, index: int, config: Config) -> None:
        assert source.path is not None
        if not source.path.is_dir():
            key = f"sources[{index + 1}].path"  # counted from 1, as people count
            raise ConfigError(str(config.path), key,
                              f"expected an existing directory, {source.path} is not one",
                              line=locate(config.path, key))  # fmt: skip
        root = str(source.path)
        # Keys name the folder by its absolute path, whatever folder the build is started
        # from (folder_key), and the file by its path inside it.
        prefix = folder_key(os.path.abspath(source.path)) + os.sep

        def on_skip(path: Path, reason: str) -> None:
            reason, _, action = reason.rpartition("; ")
            self.skipped.append(Problem(str(path), None, None, reason, action, "warning"))

        def on_error(path: Path, reason: str) -> None:
            # Its files are missing, not removed: their last records stay (see collect).
            reason = f"cannot read this folder: {reason}"
            action = "kept the records its files gave at the last build"
            self.skipped.append(Problem(str(path), None, None, reason, action))
            inside = str(path)[len(root) :].strip(os.sep)
            self.unreadable.append((prefix + (inside + os.sep if inside else ""), root, index))

        listings = list_folders(source.path, on_skip, on_error)
        if source.include or source.exclude:
            listings = self._globbed(listings, source)
        self._roots.append((index, prefix, root))
        for folder, listed in listings.items():
            key = prefix + (folder + os.sep if folder else "")
            self.listings[key] = listed
            self.count += len(listed[1])
            if NO_STAT in listed[1]:
                self.unstamped.extend(key + name for name, size in zip(names_of(listed), listed[1],
                                                                       strict=True)
                                      if size == NO_STAT)  # fmt: skip

    def _globbed(self, listings: dict[str, Listing], source: SourceConfig) -> dict[str, Listing]:
        from aggregator.filters import path_allowed

        kept: dict[str, Listing] = {}
        for folder, listed in listings.items():
            inside = folder.replace(os.sep, "/") + "/" if folder else ""
            rows = [row for row in zip(names_of(listed), listed[1], listed[2], strict=True)
                    if path_allowed(inside + row[0], source.include, source.exclude)]  # fmt: skip
            self.excluded += len(listed[1]) - len(rows)
            if rows:
                kept[folder] = listing([r[0] for r in rows], [r[1] for r in rows],
                                       [r[2] for r in rows])  # fmt: skip
        return kept


def file_stamp(size: int, mtime_ns: int) -> bytes | None:
    """A file's stamp as the parse cache keeps it, from its listing (None: found
    without a stat)."""
    return None if size == NO_STAT else STAMP.pack(size, mtime_ns)


def find_files(config: Config) -> FoundFiles:
    found = FoundFiles()
    missing = []
    for index, source in enumerate(config.sources):
        if source.path is None:
            continue  # remote: fetched in collect
        try:
            found.add_source(source, index, config)
        except ConfigError as error:
            missing.append(error)  # every missing folder in one run, not one per run
    if missing:
        raise missing[0] if len(missing) == 1 else ConfigErrors(missing)
    return found
