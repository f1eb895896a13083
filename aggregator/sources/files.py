"""Find the record files of every `path` source: their paths, stamps and cache keys.

One pass over each folder (sources/folder.py) gives every file's stamp; the keys name
the source folder by a digest of its absolute path (ParseCache.key) and the file by its
path inside it, so builds started from any folder share the cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.config import Config, SourceConfig, locate
from aggregator.errors import ConfigError, ConfigErrors, Problem
from aggregator.filters import path_allowed
from aggregator.sources.folder import scan_record_files
from aggregator.state.parse_cache import ParseCache


def _source_files(
    source: SourceConfig, index: int, config: Config, found: FoundFiles
) -> list[tuple[str, bytes | None]]:
    assert source.path is not None
    if not source.path.is_dir():
        key = f"sources[{index + 1}].path"  # counted from 1, as people count
        raise ConfigError(str(config.path), key,
                          f"expected an existing directory, {source.path} is not one",
                          line=locate(config.path, key))  # fmt: skip

    def on_skip(path: Path, reason: str) -> None:
        reason, _, action = reason.rpartition("; ")
        found.skipped.append(Problem(str(path), None, None, reason, action, "warning"))

    def on_error(path: Path, reason: str) -> None:
        # Its files are missing, not removed: their last records stay (see collect).
        reason = f"cannot read this folder: {reason}"
        action = "kept the records its files gave at the last build"
        found.skipped.append(Problem(str(path), None, None, reason, action))
        folder = ParseCache.key(os.path.abspath(source.path)) + str(path)[len(str(source.path)) :]
        found.unreadable.append((folder.rstrip(os.sep) + os.sep, str(source.path), index))

    return scan_record_files(source.path, on_skip, on_error)


@dataclass(frozen=True, slots=True)
class SourceSpan:
    """Where one `path` source's files are in FoundFiles, and its parse-cache key prefix."""

    index: int  # in config.sources
    start: int
    end: int
    prefix: str  # ParseCache key of the folder, with a trailing separator
    root: str  # the folder as configured (origins are shown relative to it)


@dataclass(frozen=True, slots=True)
class FoundFiles:
    """The record files of every `path` source, with their stats and parse-cache keys."""

    files: list[tuple[str, bytes | None]]
    keys: list[str]
    skipped: list[Problem]  # links not followed (warnings), folders not readable (errors)
    sources: list[int] = field(default_factory=list)  # each file's index in config.sources
    excluded: list[int] = field(default_factory=lambda: [0])  # files left out by globs
    unreadable: list[tuple[str, str, int]] = field(default_factory=list)  # key prefix, root, source
    spans: list[SourceSpan] = field(default_factory=list)

    def span_of(self, key: str) -> SourceSpan | None:
        """The source whose folder holds the file of this key."""
        for span in self.spans:
            if key.startswith(span.prefix):
                return span
        return None

    def path_of(self, key: str) -> str:
        """The path of a file by its key, as found (relative to where the build runs if
        its source is), also for a file that is gone."""
        span = self.span_of(key)
        if span is None:
            raise KeyError(key)
        return span.root.rstrip(os.sep) + os.sep + key[len(span.prefix) :]


def find_files(config: Config) -> FoundFiles:
    found = FoundFiles([], [], [])
    missing = []
    for index, source in enumerate(config.sources):
        if source.path is None:
            continue  # remote: fetched in collect
        start = len(found.files)
        try:
            files = _source_files(source, index, config, found)
        except ConfigError as error:
            missing.append(error)  # every missing folder in one run, not one per run
            continue
        # Cache keys name the folder by its absolute path, whatever folder the build is
        # started from (ParseCache.key), and the file by its path inside it.
        root, absolute = str(source.path), ParseCache.key(os.path.abspath(source.path))
        if source.include or source.exclude:
            cut = len(root) + 1
            kept = [entry for entry in files
                    if path_allowed(entry[0][cut:].replace(os.sep, "/"),
                                    source.include, source.exclude)]  # fmt: skip
            found.excluded[0] += len(files) - len(kept)
            files = kept
        found.files.extend(files)
        found.keys.extend(absolute + path[len(root) :] for path, _ in files)
        found.sources.extend([index] * len(files))
        prefix = absolute.rstrip(os.sep) + os.sep
        found.spans.append(SourceSpan(index, start, len(found.files), prefix, root))
    if missing:
        raise missing[0] if len(missing) == 1 else ConfigErrors(missing)
    return found
