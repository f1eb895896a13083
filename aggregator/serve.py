"""`aggregator serve`: a preview server for the output folder, on 127.0.0.1 only.

It answers the way a well-configured static host should: feed content types, strong
ETags and Last-Modified with `304 Not Modified`, gzip when the client accepts it, and
nothing outside the output folder (no `..`, no symlinks out, no hidden files).
Optionally it rebuilds on an interval in a background thread; builds write atomically,
so a request never sees a half-written file.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

HOST = "127.0.0.1"
INDEX = "index.html"
UTF8 = "; charset=utf-8"
NEGOTIATED = ("rss.xml", "atom.xml")  # the feeds that carry the XSL stylesheet
# Where pages listen for rebuilds under --live-reload: a hidden name, so it can never be
# a file of the output folder (those are not served).
LIVE_RELOAD_PATH = "/.live-reload"
KEEPALIVE = 15.0  # seconds between comments on a live-reload stream
FEED_TYPES = {
    "rss.xml": "application/rss+xml" + UTF8,
    "atom.xml": "application/atom+xml" + UTF8,
    "feed.json": "application/feed+json" + UTF8,
}
SUFFIX_TYPES = {
    ".html": "text/html" + UTF8,
    ".opml": "text/x-opml" + UTF8,
    ".xsl": "application/xml" + UTF8,  # an XML type: browsers then apply it as a stylesheet
    ".xml": "application/xml" + UTF8,
    ".json": "application/json" + UTF8,
    ".css": "text/css" + UTF8,
    ".txt": "text/plain" + UTF8,
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
}
COMPRESSIBLE = ("text/", "application/xml", "application/json", "image/svg+xml")
# Browsers show a feed served as application/rss+xml as plain source (Chromium) or offer
# a download; served as application/xml they apply the feed's XSL stylesheet.
BROWSER_FEED_TYPE = "application/xml" + UTF8


def content_type(name: str, accept: str = "") -> str:
    """The Content-Type for a file name; feeds go to browsers as XML so the stylesheet runs."""
    kind = FEED_TYPES.get(name)
    if kind is not None:
        if name in NEGOTIATED and "text/html" in accept.lower():
            return BROWSER_FEED_TYPE
        return kind
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return SUFFIX_TYPES.get(suffix, "application/octet-stream")


def is_compressible(kind: str) -> bool:
    base = kind.split(";")[0]
    return base.startswith(COMPRESSIBLE) or base.endswith(("+xml", "+json"))


def accepts_gzip(header: str) -> bool:
    """True if `Accept-Encoding` allows gzip (explicitly or through `*`) with q > 0."""
    allowed: dict[str, float] = {}
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding:
            allowed[coding.strip().lower()] = quality
    return allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", 0.0))) > 0


def resolve(root: Path, request_path: str) -> Path | None:
    """The file or folder a request path names inside `root`, or None if it is not allowed."""
    path = unquote(urlsplit(request_path).path)
    if "\x00" in path or "\\" in path:
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if any(part == ".." or part.startswith(".") for part in parts):
        return None  # no climbing out, no hidden or temp files
    base = root.resolve()
    target = base.joinpath(*parts).resolve()
    return target if target.is_relative_to(base) else None  # a symlink pointing out


def entity_tag(data: bytes, *variants: str) -> str:
    """A strong tag for one representation: the bytes' hash, plus a suffix for each way
    this answer differs from the file as stored (another Content-Type, gzip)."""
    return '"' + "-".join((hashlib.sha256(data).hexdigest()[:32], *variants)) + '"'


def matches_etag(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): `W/` prefixes are ignored."""
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def not_modified_since(header: str, modified: datetime) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return modified.replace(microsecond=0) <= since


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


def respond(
    root: Path, request_path: str, headers: dict[str, str], page_script: str = ""
) -> Response:
    """Everything about answering one GET, without the socket: easy to reason about.
    `page_script` is added to every HTML page before `</body>` (live reload)."""
    target = resolve(root, request_path)
    if target is not None and target.is_dir():
        raw_path = urlsplit(request_path).path
        if not raw_path.endswith("/"):
            return Response(HTTPStatus.MOVED_PERMANENTLY, (("Location", raw_path + "/"),))
        target = target / INDEX
    if target is None or not target.is_file():
        return _not_found()
    try:
        data = target.read_bytes()
        modified = datetime.fromtimestamp(target.stat().st_mtime, UTC)
    except OSError:
        return _not_found()
    kind = content_type(target.name, headers.get("accept", ""))
    injected = bool(page_script) and kind.startswith("text/html")
    if injected:
        data = with_script(data, page_script)
    compress = is_compressible(kind) and accepts_gzip(headers.get("accept-encoding", ""))
    variants = []
    if kind != content_type(target.name):
        variants.append("xml")  # a feed sent to a browser as application/xml
    if compress:
        variants.append("gzip")
    etag = entity_tag(data, *variants)  # another representation, another tag
    common = [
        ("ETag", etag),
        ("Last-Modified", formatdate(modified.timestamp(), usegmt=True)),
        ("Cache-Control", "no-cache"),  # a preview: always revalidate (cheap with 304)
        ("Vary", "Accept-Encoding, Accept" if target.name in NEGOTIATED else "Accept-Encoding"),
    ]
    if injected:
        del common[1]  # the page also changes with the script, not only with the file
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        fresh = matches_etag(if_none_match, etag)
    elif injected:
        fresh = False
    else:
        fresh = not_modified_since(headers.get("if-modified-since", ""), modified)
    if fresh:
        return Response(HTTPStatus.NOT_MODIFIED, tuple(common))
    body = gzip.compress(data, mtime=0) if compress else data
    common.append(("Content-Type", kind))
    if compress:
        common.append(("Content-Encoding", "gzip"))
    return Response(HTTPStatus.OK, tuple(common), body)


def with_script(page: bytes, script: str) -> bytes:
    """`page` with `script` just before its last `</body>` (or at the end)."""
    tag = f"<script>{script}</script>\n".encode()
    end = page.rfind(b"</body>")
    return page + tag if end < 0 else page[:end] + tag + page[end:]


def live_reload_script(generation: int) -> str:
    """Reload the page when the server says a build changed the output after
    `generation` (also when the server restarted, since its count starts again)."""
    return (
        f'new EventSource("{LIVE_RELOAD_PATH}?since={generation}")'
        '.addEventListener("reload", () => location.reload());'
    )


def _not_found() -> Response:
    body = b"Not found\n"
    return Response(HTTPStatus.NOT_FOUND, (("Content-Type", "text/plain" + UTF8),), body)


class PreviewServer(ThreadingHTTPServer):
    """With `live_reload`, HTML pages carry a script that listens on LIVE_RELOAD_PATH
    (server-sent events) and reloads the page once `changed()` is called."""

    daemon_threads = True

    def __init__(
        self,
        root: Path,
        port: int,
        log: Callable[[str], None] | None = None,
        *,
        live_reload: bool = False,
    ) -> None:
        self.root = root
        self.log = log
        self.live_reload = live_reload
        self.generation = 0  # how many times a build changed the output
        self.listening = 0  # pages waiting for a reload right now
        self._changes = threading.Condition()
        self._closing = False
        super().__init__((HOST, port), PreviewHandler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def changed(self) -> None:
        """A build changed files: open pages reload."""
        with self._changes:
            self.generation += 1
            self._changes.notify_all()

    def wait_for_change(self, since: int, timeout: float) -> int | None:
        """The generation once it differs from `since` (or after `timeout`); None when the
        server is shutting down."""
        with self._changes:
            self.listening += 1
            try:
                self._changes.wait_for(lambda: self.generation != since or self._closing, timeout)
            finally:
                self.listening -= 1
            return None if self._closing else self.generation

    def shutdown_streams(self) -> None:
        """End the live-reload streams, so their threads finish."""
        with self._changes:
            self._closing = True
            self._changes.notify_all()


class PreviewHandler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "aggregator-preview"

    def do_GET(self) -> None:
        if self.server.live_reload and urlsplit(self.path).path == LIVE_RELOAD_PATH:
            self._stream_reloads()
            return
        self._answer(send_body=True)

    def _stream_reloads(self) -> None:
        """Server-sent events: a comment every KEEPALIVE seconds, and one `reload` event
        as soon as the output changed after the page's generation."""
        query = parse_qs(urlsplit(self.path).query)
        since = query.get("since", [""])[0]
        generation = int(since) if since.isdigit() else -1
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream" + UTF8)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while True:
                now = self.server.wait_for_change(generation, KEEPALIVE)
                if now is None:
                    return
                if now != generation:
                    self.wfile.write(f"event: reload\ndata: {now}\n\n".encode())
                    self.wfile.flush()
                    return
                self.wfile.write(b": still here\n\n")  # finds a closed page
                self.wfile.flush()
        except OSError:
            return  # the page was closed

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        script = live_reload_script(self.server.generation) if self.server.live_reload else ""
        response = respond(self.server.root, self.path, headers, script)
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if send_body and response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")


class Rebuilder:
    """Runs `build` now and then every `interval` seconds until stopped."""

    def __init__(self, build: Callable[[], None], interval: float) -> None:
        self._build = build
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rebuild", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._build()
