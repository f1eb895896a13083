"""Fixtures and servers: real HTTP servers on 127.0.0.1, the preview server and a real
PostgreSQL server. Everything else the tests share is in factories.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.serve import PreviewServer

from .factories import EXAMPLES, fields, url_source


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


# --- PostgreSQL ----------------------------------------------------------------------------


class PostgresServer:
    """A real PostgreSQL server for the tests: initdb on a temporary data folder, started
    on a free port of 127.0.0.1 (and a socket in that folder), stopped and removed at the
    end. initdb and the server refuse to run as root, so as root they run as the
    `postgres` user the Debian package makes (`runuser`)."""

    def __init__(self, bin_dir: Path, run_as: str | None) -> None:
        import socket
        import tempfile

        self.bin_dir = bin_dir
        self.prefix = ["runuser", "-u", run_as, "--"] if run_as else []
        self.folder = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
        if run_as:
            shutil.chown(self.folder, run_as)
        self.data = self.folder / "data"
        self._run("initdb", "-D", str(self.data), "-U", "aggregator", "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")  # fmt: skip
        for _attempt in range(5):  # a free port may be taken between finding and binding it
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            settings = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                        "-c max_connections=200")  # fmt: skip
            started = self._run("pg_ctl", "-D", str(self.data), "-o", settings,
                                "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                                "start", check=False)  # fmt: skip
            if started.returncode == 0:
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start: {self.log()}")
        self._databases = 0

    def _run(self, program: str, *args: str, check: bool = True):
        import subprocess

        command = [*self.prefix, str(self.bin_dir / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                check=False, stdin=subprocess.DEVNULL)  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stderr.strip()}")
        return result

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://aggregator@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda path: int(path.parent.parent.name)
                      if path.parent.parent.name.isdigit() else 0)  # fmt: skip
    return versions[-1].parent if versions else None


def _postgres_unavailable(reason: str) -> None:
    """Skip, with the reason; where PostgreSQL must be there (CI), fail instead."""
    if os.environ.get("AGGREGATOR_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL tests required but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _postgres_unavailable("psycopg is not installed (pip install -e '.[test]')")
    bin_dir = postgres_binaries()
    if bin_dir is None:
        _postgres_unavailable("PostgreSQL is not installed (no initdb on PATH or in "
                              "/usr/lib/postgresql/*/bin; .ci/run installs it)")  # fmt: skip
    run_as = None
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _postgres_unavailable("running as root and there is no 'postgres' user to "
                                  "run the server as")  # fmt: skip
        if shutil.which("runuser") is None:
            _postgres_unavailable("running as root and runuser is missing")
        run_as = "postgres"
    assert bin_dir is not None
    server = PostgresServer(bin_dir, run_as)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@dataclass(frozen=True)
class StateBackend:
    """One state backend under test: how to open its store, and the config lines that
    choose it (none for SQLite, `[state] url` for PostgreSQL)."""

    name: str
    url: str | None  # PostgreSQL's; None for SQLite
    path: Path  # the SQLite file (unused by PostgreSQL)

    @property
    def toml(self) -> str:
        return f'\n[state]\nurl = "{self.url}"\n' if self.url else ""

    def open(self):
        from aggregator.state.postgres import PostgresStore
        from aggregator.state.sqlite import SqliteStore

        return PostgresStore.open(self.url) if self.url else SqliteStore.open(self.path)


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StateBackend:
    """Each test that takes it runs on SQLite and on a real PostgreSQL database."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return StateBackend(request.param, url, tmp_path / "state.db")


class SourceFarm:
    """`count` remote sources on one real HTTP server (/s/N.json, a JSON list holding
    one record each) that counts the requests for each. `latency` delays every answer;
    `hold(n)` keeps the first request for source n waiting until `release(n)`;
    `answer(n, status, headers)` changes what source n answers."""

    def __init__(self, server: HTTPServer, count: int, latency: float = 0.0) -> None:
        import re
        from collections import Counter

        self.server = server
        self.count = count
        self.latency = latency
        self.requests: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._held: dict[int, threading.Event] = {}
        self.arrived: dict[int, threading.Event] = {}
        self._answers: dict[int, tuple[int, dict[str, str]]] = {}
        server.expect_request(re.compile(r"^/s/\d+\.json$")).respond_with_handler(self)

    def url(self, n: int) -> str:
        return self.server.url_for(f"/s/{n}.json")

    def sources_toml(self, **settings: object) -> str:
        return "".join("\n" + url_source(self.url(n), **settings) for n in range(self.count))

    def hold(self, n: int) -> None:
        self._held[n] = threading.Event()
        self.arrived[n] = threading.Event()

    def release(self, n: int) -> None:
        self._held[n].set()

    def answer(self, n: int, status: int, headers: dict[str, str] | None = None) -> None:
        self._answers[n] = (status, headers or {})

    def __call__(self, request: Request) -> Response:
        import json

        n = int(request.path.rsplit("/", 1)[1].split(".")[0])
        with self._lock:
            self.requests[n] += 1
            first = self.requests[n] == 1
        if n in self._held and first:
            self.arrived[n].set()
            self._held[n].wait(30)
        if self.latency:
            time.sleep(self.latency)
        status, headers = self._answers.get(n, (200, {}))
        if status != 200:
            return Response(b"", status, headers)
        body = json.dumps([fields(n, topics=["AI", f"Topic {n % 3}"])]).encode()
        return Response(body, 200, {"Content-Type": "application/json", **headers})


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
