from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from . import factories

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "records"
# The shared corpus sits beside the repository (CI: a copy of shared/ beside the clone);
# a git worktree nested deeper finds it in the nearest ancestor that has one.
CORPUS = next(
    (
        folder / "shared" / "corpus"
        for folder in ROOT.parents
        if (folder / "shared" / "corpus").is_dir()
    ),
    ROOT.parent / "shared" / "corpus",
)


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config.toml in tmp_path whose single source is `records_dir`."""

    def write(records_dir: Path, extra: str = "") -> Path:
        return factories.write_config(tmp_path, [str(records_dir)], extra)

    return write


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
