"""Object storage: after a build, copy the output folder to `[site] output_url`
(`s3://BUCKET/PREFIX`, on S3 or any S3-compatible store, through s3fs).

The local output folder stays the preview and the source of truth. Only objects whose
bytes (or headers) differ from what the bucket was last given are put: a digest of each
object put is kept in the state store (namespace "storage", keyed by the object's URL)
and recorded only once the store confirmed the put, so a failed or killed upload is
retried by the next build. Objects go up in the order local files are written (feeds
before the pages and OPML list that link to them); objects this tool put there that no
build makes any more are deleted, pages before the feeds they link to, and only while
they still hold what was put (an object someone else wrote is never touched).

s3fs (and fsspec, botocore, aiohttp) load only here, when `output_url` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from aggregator.config import Config, StorageConfig, locate
from aggregator.errors import ConfigError, UploadFailed
from aggregator.output.changes import Uploads
from aggregator.output.plan import ARCHIVE_FOLDER, link_order
from aggregator.state import StateStore
from aggregator.state.feed_cache import FEEDS

NAMESPACE = "storage"
CONCURRENCY = 8  # puts in flight at once (each waits on the network)
# botocore settings unless output_options.config_kwargs says otherwise: a dead endpoint
# costs seconds, not minutes (botocore's own default is 60 s per connection attempt).
DEFAULT_CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 30,
    "retries": {"max_attempts": 3, "mode": "standard"},
}
# Set by us: every build sees the bucket afresh, and no filesystem outlives it.
RESERVED_OPTIONS = ("skip_instance_cache", "use_listings_cache", "asynchronous", "loop")
_DIGEST = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class _Put:
    """One object the bucket must be given."""

    relative: str
    data: bytes
    content_type: str
    digest: bytes  # of the bytes and the headers: a new Cache-Control puts it again


def content_type(relative: str) -> str:
    """The Content-Type an object is stored with (S3 sends it as stored: no negotiation)."""
    from aggregator.serve import FEED_TYPES
    from aggregator.serve import content_type as by_name

    folders, _, name = relative.rpartition("/")
    if folders.rpartition("/")[2] == ARCHIVE_FOLDER:  # archive/rss-3.xml is an RSS feed
        kind = name.partition("-")[0]
        for feed, value in FEED_TYPES.items():
            if feed.startswith(f"{kind}."):
                return value
    return by_name(name)


def _digest(data: bytes, content_type: str, cache_control: str) -> bytes:
    digest = hashlib.sha256(f"{content_type}\n{cache_control}\n".encode())
    digest.update(data)
    return digest.digest()


def _entry(digest: bytes, etag: str) -> bytes:
    return digest + etag.encode()


def _unpack(entry: bytes) -> tuple[bytes, str]:
    return entry[:_DIGEST], entry[_DIGEST:].decode(errors="replace")


class Bucket:
    """The destination of one build: an S3 filesystem for `[site] output_url`."""

    def __init__(self, storage: StorageConfig, filesystem: Any) -> None:
        self.storage = storage
        self._fs = filesystem

    @classmethod
    def open(cls, config: Config) -> Bucket:
        """The bucket of `config` (nothing is sent yet); ConfigError for settings s3fs
        does not take, so that a build with them writes nothing."""
        storage = config.storage
        assert storage is not None

        def error(key: str, expected: str) -> ConfigError:
            return ConfigError(str(config.path), key, expected, line=locate(config.path, key))

        try:
            import s3fs
        except ImportError as exc:
            raise error("site.output_url",
                        f"needs s3fs ({exc}): pip install 'aggregator[s3]'") from None
        options = dict(storage.options)
        accepted = [name for name, parameter in
                    inspect.signature(s3fs.S3FileSystem.__init__).parameters.items()
                    if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
                    and name != "self" and name not in RESERVED_OPTIONS]  # fmt: skip
        for name in options:
            if name not in accepted:
                import difflib

                close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else "see docs/configuration.md"
                raise error(f"site.output_options.{name}", f"not an s3fs setting; {hint}")
        client = options.get("config_kwargs", {})
        if not isinstance(client, dict):
            raise error("site.output_options.config_kwargs",
                        "expected a table of botocore Config settings")
        options["config_kwargs"] = {**DEFAULT_CLIENT_CONFIG, **client}
        try:
            filesystem = s3fs.S3FileSystem(**options, skip_instance_cache=True,
                                           use_listings_cache=False)  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise error("site.output_options", f"s3fs refused it: {exc}") from None
        filesystem.retries = 1  # botocore retries (above); s3fs's own loop would multiply them
        return cls(storage, filesystem)

    def _path(self, relative: str) -> str:
        """The object as s3fs names it: BUCKET/PREFIX/relative."""
        return self.storage.object_url(relative).removeprefix("s3://")

    def sync(self, output: Path, store: StateStore, *, full: bool = False) -> Uploads:
        """Put every file the last build made whose bytes the bucket lacks, then delete
        what this tool put there that the build no longer makes. UploadFailed on the first
        object the store refuses (the rest of its group still lands, nothing after it)."""
        storage = self.storage
        mine = f"{storage.url}/"
        remembered = store.items(NAMESPACE)
        # Another destination's objects are not ours any more: forget them (untouched).
        store.delete_many(NAMESPACE, sorted(key for key in remembered if not key.startswith(mine)))
        known = {key[len(mine) :]: _unpack(value) for key, value in remembered.items()
                 if key.startswith(mine)}  # fmt: skip
        files = sorted(store.keys(FEEDS), key=lambda relative: (link_order(relative), relative))
        puts, unchanged = [], 0
        for relative in files:
            local = output / relative
            try:
                data = local.read_bytes()
            except OSError as exc:
                raise UploadFailed(storage.object_url(relative), f"cannot read {local}: "
                                   f"{exc.strerror or exc}") from None  # fmt: skip
            kind = content_type(relative)
            digest = _digest(data, kind, storage.cache_control)
            if not full and relative in known and known[relative][0] == digest:
                unchanged += 1
                continue
            puts.append(_Put(relative, data, kind, digest))
        uploaded: list[str] = []
        deleted: list[str] = []
        gone = sorted(set(known) - set(files), key=lambda path: (-link_order(path), path))
        try:
            for _, group in groupby(puts, key=lambda put: link_order(put.relative)):
                self._put_group(list(group), store, uploaded)
            self._delete(gone, known, store, deleted)
        except UploadFailed as exc:
            # What did change is announced and listed all the same (it is live).
            exc.changed = tuple(sorted({*uploaded, *deleted}))
            raise
        return Uploads(storage.url, tuple(uploaded), tuple(deleted), unchanged)

    def _put_group(self, puts: Sequence[_Put], store: StateStore, uploaded: list[str]) -> None:
        """Put these objects CONCURRENCY at a time; record each confirmed put; after a
        failure start no more, and raise it once those in flight are done."""
        from fsspec.asyn import sync

        fs, cache_control = self._fs, self.storage.cache_control
        failures: list[tuple[str, BaseException]] = []

        async def put_all() -> list[tuple[_Put, Any]]:
            slots = asyncio.Semaphore(CONCURRENCY)

            async def put(item: _Put) -> tuple[_Put, Any]:
                async with slots:
                    if failures:
                        return item, None  # not started: the next build sends it
                    try:
                        response = await fs._pipe_file(self._path(item.relative), item.data,
                                                       ContentType=item.content_type,
                                                       CacheControl=cache_control)  # fmt: skip
                    except Exception as exc:  # botocore, aiohttp and OS errors alike
                        failures.append((item.relative, exc))
                        return item, None
                    return item, response

            return await asyncio.gather(*(put(item) for item in puts))

        results = sync(fs.loop, put_all)
        confirmed = [(item, response) for item, response in results if response is not None]
        store.put_many(NAMESPACE, [
            (self.storage.object_url(item.relative),
             _entry(item.digest, str(response.get("ETag", ""))))
            for item, response in confirmed
        ])  # fmt: skip
        uploaded.extend(item.relative for item, _ in confirmed)
        if failures:
            relative, exc = min(failures, key=lambda failure: failure[0])
            raise UploadFailed(self.storage.object_url(relative), _reason(exc))

    def _delete(
        self,
        gone: Sequence[str],
        known: dict[str, tuple[bytes, str]],
        store: StateStore,
        deleted: list[str],
    ) -> None:
        """Delete each object this tool put that no build makes now, if it still holds
        what was put (its ETag); forget it either way."""
        fs = self._fs
        for relative in gone:
            path, url = self._path(relative), self.storage.object_url(relative)
            try:
                etag = fs.info(path).get("ETag")
                if etag == known[relative][1]:
                    fs.rm_file(path)
                    deleted.append(relative)
            except FileNotFoundError:
                pass  # already gone
            except Exception as exc:
                raise UploadFailed(url, f"could not delete: {_reason(exc)}") from None
            store.delete_many(NAMESPACE, [url])


def _reason(exc: BaseException) -> str:
    """What went wrong, on one line, with what to do where it is plain."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return (f"{text} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE; "
                "see docs/configuration.md)")  # fmt: skip
    # s3fs turns the store's answers into OSErrors with its message ("The specified bucket
    # does not exist", "Access Denied"); botocore's own errors are best named.
    return text if isinstance(exc, OSError) else f"{name}: {text}"
