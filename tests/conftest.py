"""Fixtures and servers: real HTTP servers on 127.0.0.1 and the preview server.
Everything else the tests share is in factories.py."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.serve import PreviewServer

from .factories import EXAMPLES


@contextmanager
def running_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        if server.is_running():
            server.clear()
            server.stop()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[HTTPServer]:
    with running_server() as started:  # stopping a server takes 0.5 s: one per module
        yield started


class HeldResponse:
    """A handler that answers only once released: a server slower than the client's
    timeout. `finish()` releases it and waits until the server has logged every request
    (`requests` in all), so that no late request spills into the next test's log."""

    def __init__(self, server: HTTPServer, body: bytes) -> None:
        self.server = server
        self.body = body
        self.released = threading.Event()

    def __call__(self, request: Request) -> Response:
        self.released.wait(10)
        return Response(self.body)

    def finish(self, requests: int) -> None:
        self.released.set()
        deadline = time.monotonic() + 10
        while len(self.server.log) < requests and time.monotonic() < deadline:
            time.sleep(0.01)


def conditional(
    body: bytes, content_type: str, served: list[str] | None = None
) -> Callable[[Request], Response]:
    """A handler answering like a static web server: ETag, Last-Modified and 304."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    modified = "Mon, 04 Mar 2024 10:00:00 GMT"

    def handle(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            status, data = 304, b""
        else:
            status, data = 200, body
        if served is not None:
            served.append(f"{status} {request.path}")
        return Response(
            data, status, {"ETag": etag, "Last-Modified": modified, "Content-Type": content_type}
        )

    return handle


@pytest.fixture
def server(shared_server: HTTPServer) -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1, shared within a module, cleared after each test."""
    yield shared_server
    shared_server.clear()


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """The bundled examples without the deliberately malformed one: builds exit 0."""
    folder = tmp_path / "records"
    shutil.copytree(EXAMPLES, folder)
    (folder / "2026-11-18-malformed-date-example.md").unlink()
    return folder


class DripServer:
    """A raw HTTP server on 127.0.0.1 that sends its answer one byte at a time, each
    `interval` seconds: every read succeeds within any per-read timeout, the answer
    takes seconds (about 300 bytes: a test on code without deadlines fails rather than
    hangs). `headers_fast` sends the headers at once and drips the body."""

    def __init__(self, interval: float = 0.05, *, headers_fast: bool = False) -> None:
        import socket

        self.interval = interval
        self.headers_fast = headers_fast
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def url(self, path: str = "/feed.json") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._drip, args=(connection,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _drip(self, connection) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        with connection:
            try:
                connection.settimeout(1)
                connection.recv(65536)  # the request
                if self.headers_fast:
                    connection.sendall(head)
                    head = b"[" + b" " * 198 + b"]"
                for byte in head:
                    if self.stopped.wait(self.interval):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.acceptor.join(5)
        for thread in self.threads:
            thread.join(5)
        self.listener.close()


@contextmanager
def drip_server(interval: float = 0.05, *, headers_fast: bool = False) -> Iterator[DripServer]:
    server = DripServer(interval, headers_fast=headers_fast)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def preview(root: Path, *, live_reload: bool = False) -> Iterator[PreviewServer]:
    server = PreviewServer(root, 0, live_reload=live_reload)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.shutdown_streams()
        server.server_close()
        thread.join()
