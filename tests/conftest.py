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
from typing import Any
from urllib.parse import unquote, urlsplit

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


class S3Server:
    """moto's S3-compatible server on 127.0.0.1 (the one `moto_server` runs), with a log
    of every request it answered: (method, bucket/key path, status), in order."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        log: list[tuple[str, str, int]] = []
        self.log = log

        class Handler(MotoRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                path = unquote(urlsplit(self.path).path)
                log.append((self.command, path.lstrip("/"), int(str(getattr(code, "value", code)))))

            def log(self, type: str, message: str, *args: object) -> None:
                pass  # werkzeug would print every request to stderr

        app = DomainDispatcherApplication(create_backend_app)
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client(self) -> Any:
        """A boto3 client of its own, to look at the bucket the way an operator would."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip

    def reset(self) -> None:
        """Forget every bucket and the log (moto's own reset call)."""
        import httpx

        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()
        self.log.clear()

    def objects(self, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every object under `prefix`: key -> its bytes and headers, as S3 sends them."""
        client = self.client()
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix):  # fmt: skip
            for entry in page.get("Contents", []):
                got = client.get_object(Bucket=bucket, Key=entry["Key"])
                found[entry["Key"]] = {
                    "data": got["Body"].read(),
                    "type": got["ContentType"],
                    "cache": got.get("CacheControl"),
                    "etag": got["ETag"],
                    "modified": got["LastModified"],
                }
        return found

    def requests(self, method: str) -> list[str]:
        """The paths of the requests made with `method` that succeeded, in order."""
        return [path for verb, path, status in self.log if verb == method and status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[S3Server]:
    """The S3 server, emptied, and credentials for it in the environment (as an operator
    sets them): no profile, config file or endpoint of the machine's own is used."""
    s3_server.reset()
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    yield s3_server
    s3_server.log.clear()
