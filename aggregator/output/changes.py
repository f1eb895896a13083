"""The one list of what a build changed where it publishes: the paths whose bytes changed
or that were removed, in the output folder or (with `[site] output_url`) in the bucket.

WebSub announces the feeds in it, `build --changed-paths FILE` writes it for CDN
invalidation: both come from here, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from aggregator.output.folder import write_if_changed
from aggregator.render.paths import PAGE_NAME  # served for its folder's URL too


@dataclass(frozen=True, slots=True)
class Uploads:
    """What a build did to object storage."""

    destination: str  # s3://BUCKET/PREFIX
    uploaded: tuple[str, ...] = ()  # relative paths put, in the order they were put
    deleted: tuple[str, ...] = ()  # objects this tool put there that no build makes now
    unchanged: int = 0  # files whose bytes the bucket already holds

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(sorted({*self.uploaded, *self.deleted}))


def local_changes(
    output: Path, written: Iterable[Path], removed: Iterable[Path]
) -> tuple[str, ...]:
    """Relative POSIX paths of the files written or removed under `output`, sorted."""
    paths = set()
    for path in (*written, *removed):
        try:
            paths.add(path.relative_to(output).as_posix())
        except ValueError:
            continue  # not ours to announce
    return tuple(sorted(paths))


def public_urls(base_url: str, paths: Iterable[str]) -> list[str]:
    """The public URL of each changed path."""
    return [urljoin(base_url, path) for path in paths]


def cdn_paths(base_url: str, paths: Iterable[str]) -> list[str]:
    """URL paths to invalidate in a CDN, one per changed path, and a page's folder too
    (`/topics/ai/` is cached apart from `/topics/ai/index.html`)."""
    result: list[str] = []
    for path in paths:
        url_path = urlsplit(urljoin(base_url, path)).path
        result.append(url_path)
        if path.rsplit("/", 1)[-1] == PAGE_NAME:
            result.append(url_path[: -len(PAGE_NAME)])
    return result


def write_changed_paths(target: Path, base_url: str, paths: Iterable[str]) -> None:
    """Write the CDN paths of `paths` to `target`, one per line (an empty file when
    nothing changed), atomically."""
    lines = cdn_paths(base_url, paths)
    write_if_changed(target, "".join(f"{line}\n" for line in lines).encode())
