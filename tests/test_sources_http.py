"""The HTTP retriever against a real server on 127.0.0.1."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import brotli
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import FetchConfig
from aggregator.sources.http import (
    BadContentEncoding,
    ConnectionFailed,
    Fetched,
    Fetcher,
    FetchError,
    Gone,
    HTTPStatusFailure,
    NotModified,
    RedirectFailure,
    ResponseTooLarge,
    TimedOut,
    Validators,
    fetch_url,
    parse_retry_after,
)

from .conftest import HeldResponse
from .factories import local_fetch

FAST = local_fetch(timeout=2.0, retries=2, backoff=0.001, max_retry_after=0.05)


def fetch(
    config: FetchConfig, url: str, validators: Validators | None = None
) -> Fetched | NotModified:
    return fetch_url(config, url, validators or Validators())


def fetch_recording_sleeps(
    config: FetchConfig, url: str
) -> tuple[Fetched | NotModified, list[float]]:
    """Fetch with the backoff clock replaced by a recorder, to see the delays asked for."""
    delays: list[float] = []
    with Fetcher.open(config, sleep=delays.append) as fetcher:
        return fetcher.fetch(url), delays


def test_plain_get_returns_body_validators_and_sends_user_agent(server: HTTPServer) -> None:
    server.expect_request("/a.json", headers={"User-Agent": FAST.user_agent}).respond_with_data(
        b'{"x": 1}',
        content_type="application/json",
        headers={"ETag": '"v1"', "Last-Modified": "Mon, 04 Mar 2024 10:00:00 GMT"},
    )
    result = fetch(FAST, server.url_for("/a.json"))
    assert isinstance(result, Fetched)
    assert result.body == b'{"x": 1}'
    assert result.content_type == "application/json"
    assert result.validators == Validators('"v1"', "Mon, 04 Mar 2024 10:00:00 GMT")
    assert "aggregator" in FAST.user_agent and "https://" in FAST.user_agent


def test_conditional_get_sends_validators_and_reads_304(server: HTTPServer) -> None:
    server.expect_request(
        "/a.json",
        headers={"If-None-Match": '"v1"', "If-Modified-Since": "Mon, 04 Mar 2024 10:00:00 GMT"},
    ).respond_with_data(b"", status=304)
    result = fetch(
        FAST, server.url_for("/a.json"), Validators('"v1"', "Mon, 04 Mar 2024 10:00:00 GMT")
    )
    assert isinstance(result, NotModified)


def test_server_error_then_success_is_retried(server: HTTPServer) -> None:
    server.expect_ordered_request("/flaky").respond_with_data(b"oops", status=500)
    server.expect_ordered_request("/flaky").respond_with_data(
        b"[]", content_type="application/json"
    )
    result = fetch(FAST, server.url_for("/flaky"))
    assert isinstance(result, Fetched) and result.body == b"[]"
    assert len(server.log) == 2


def test_persistent_server_error_gives_up_after_the_retries(server: HTTPServer) -> None:
    server.expect_request("/down").respond_with_data(b"oops", status=503)
    with pytest.raises(HTTPStatusFailure) as caught:
        fetch(FAST, server.url_for("/down"))
    assert caught.value.status == 503
    assert caught.value.reason == "HTTP 503 Service Unavailable"
    assert len(server.log) == FAST.retries + 1


def test_client_errors_are_not_retried_and_410_is_gone(server: HTTPServer) -> None:
    server.expect_request("/missing").respond_with_data(b"", status=404)
    server.expect_request("/gone").respond_with_data(b"", status=410)
    with pytest.raises(HTTPStatusFailure) as missing:
        fetch(FAST, server.url_for("/missing"))
    assert missing.value.reason == "HTTP 404 Not Found"
    with pytest.raises(Gone) as gone:
        fetch(FAST, server.url_for("/gone"))
    assert "410 Gone" in gone.value.reason
    assert len(server.log) == 2


def test_429_waits_as_long_as_retry_after_says(server: HTTPServer) -> None:
    server.expect_ordered_request("/busy").respond_with_data(
        b"", status=429, headers={"Retry-After": "7"}
    )
    server.expect_ordered_request("/busy").respond_with_data(b"[]", content_type="application/json")
    config = local_fetch(retries=2, backoff=0.001, max_retry_after=30)
    result, delays = fetch_recording_sleeps(config, server.url_for("/busy"))
    assert isinstance(result, Fetched)
    assert delays == [7.0]


def test_retry_after_is_capped_and_really_waited(server: HTTPServer) -> None:
    server.expect_ordered_request("/busy").respond_with_data(
        b"", status=429, headers={"Retry-After": "3600"}
    )
    server.expect_ordered_request("/busy").respond_with_data(b"[]", content_type="application/json")
    result, delays = fetch_recording_sleeps(FAST, server.url_for("/busy"))
    assert isinstance(result, Fetched)
    assert delays == [FAST.max_retry_after]
    # And with the real clock, the capped wait happens (two requests, one success).
    server.clear_log()
    server.expect_ordered_request("/busy").respond_with_data(
        b"", status=429, headers={"Retry-After": "3600"}
    )
    server.expect_ordered_request("/busy").respond_with_data(b"[]", content_type="application/json")
    assert isinstance(fetch(FAST, server.url_for("/busy")), Fetched)


def test_backoff_doubles_between_connection_retries(server: HTTPServer) -> None:
    server.expect_request("/down").respond_with_data(b"", status=502)
    config = local_fetch(retries=3, backoff=0.5, max_retry_after=30)
    delays: list[float] = []
    with Fetcher.open(config, sleep=delays.append) as fetcher, pytest.raises(HTTPStatusFailure):
        fetcher.fetch(server.url_for("/down"))
    assert delays == [0.5, 1.0, 2.0]


def test_retry_after_accepts_an_http_date() -> None:
    now = datetime(2024, 3, 4, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 04 Mar 2024 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 04 Mar 2024 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("120", now) == 120.0


def test_a_slow_server_times_out(server: HTTPServer) -> None:
    slow = HeldResponse(server, b"[]")
    server.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(TimedOut) as caught:
        fetch(local_fetch(timeout=0.2, retries=0), server.url_for("/slow"))
    assert caught.value.reason == "timed out after 0.2 s"
    slow.finish(requests=1)


def test_connection_refused_is_a_connection_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionFailed) as caught:
        fetch(FAST, f"http://127.0.0.1:{port}/feed.xml")
    assert caught.value.reason == "connection refused"


def test_oversized_body_is_refused(server: HTTPServer) -> None:
    config = local_fetch(max_bytes=1000, retries=0)
    server.expect_request("/big").respond_with_data(b"x" * 1001)
    server.expect_request("/fits").respond_with_data(b"x" * 1000)
    with pytest.raises(ResponseTooLarge):
        fetch(config, server.url_for("/big"))
    assert isinstance(fetch(config, server.url_for("/fits")), Fetched)


def test_oversized_body_without_length_is_stopped_while_streaming(server: HTTPServer) -> None:
    def chunked(request: Request) -> Response:
        return Response((b"x" * 4096 for _ in range(100)), direct_passthrough=True)

    server.expect_request("/stream").respond_with_handler(chunked)
    with pytest.raises(ResponseTooLarge):
        fetch(local_fetch(max_bytes=10_000, retries=0), server.url_for("/stream"))


def _gzip_bomb(megabytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    return b"".join([packer.compress(block) for _ in range(megabytes)] + [packer.flush()])


def _peak_memory_of(call) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_gzip_bomb_is_stopped_at_the_cap_without_inflating_it(server: HTTPServer) -> None:
    bomb = _gzip_bomb(64)  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 100_000
    server.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    config = local_fetch(max_bytes=1 << 20, retries=0)

    def attempt() -> None:
        with pytest.raises(ResponseTooLarge):
            fetch(config, server.url_for("/bomb"))

    assert _peak_memory_of(attempt) < 16 << 20  # far below the 64 MiB it would inflate to


def test_brotli_bomb_is_stopped_at_the_cap_without_inflating_it(server: HTTPServer) -> None:
    bomb = brotli.compress(b"\0" * (64 << 20), quality=5)
    server.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "br"})
    config = local_fetch(max_bytes=1 << 20, retries=0)

    def attempt() -> None:
        with pytest.raises(ResponseTooLarge):
            fetch(config, server.url_for("/bomb"))

    assert _peak_memory_of(attempt) < 16 << 20


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
        ("br", brotli.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
)
def test_compressed_bodies_are_decoded(server: HTTPServer, coding: str, pack) -> None:  # type: ignore[no-untyped-def]
    body = b'{"title": "x"}' * 20_000
    server.expect_request("/c").respond_with_data(pack(body), headers={"Content-Encoding": coding})
    result = fetch(FAST, server.url_for("/c"))
    assert isinstance(result, Fetched) and result.body == body


def test_gzip_with_several_members_is_decoded_whole(server: HTTPServer) -> None:
    server.expect_request("/c").respond_with_data(
        gzip.compress(b"[1, ") + gzip.compress(b"2]"), headers={"Content-Encoding": "gzip"}
    )
    result = fetch(FAST, server.url_for("/c"))
    assert isinstance(result, Fetched) and result.body == b"[1, 2]"


def test_a_body_that_is_not_what_its_coding_says_is_an_error(server: HTTPServer) -> None:
    server.expect_request("/c").respond_with_data(
        b"plain text", headers={"Content-Encoding": "gzip"}
    )
    server.expect_request("/z").respond_with_data(b"data", headers={"Content-Encoding": "zstd"})
    with pytest.raises(BadContentEncoding, match="invalid gzip"):
        fetch(FAST, server.url_for("/c"))
    with pytest.raises(BadContentEncoding, match="unsupported Content-Encoding 'zstd'"):
        fetch(FAST, server.url_for("/z"))


def test_redirect_loop_is_detected(server: HTTPServer) -> None:
    server.expect_request("/a").respond_with_data(b"", status=302, headers={"Location": "/b"})
    server.expect_request("/b").respond_with_data(b"", status=302, headers={"Location": "/a"})
    with pytest.raises(RedirectFailure, match="redirect loop") as caught:
        fetch(FAST, server.url_for("/a"))
    assert caught.value.reason.endswith(
        "/a -> " + server.url_for("/b") + " -> " + server.url_for("/a")
    )
    assert len(server.log) == 2  # not retried


def test_redirect_limit(server: HTTPServer) -> None:
    for n in range(5):
        server.expect_request(f"/r{n}").respond_with_data(
            b"", status=307, headers={"Location": f"/r{n + 1}"}
        )
    server.expect_request("/r5").respond_with_data(b"[]")
    assert isinstance(fetch(local_fetch(max_redirects=5), server.url_for("/r0")), Fetched)
    with pytest.raises(RedirectFailure, match="more than 4 redirects"):
        fetch(local_fetch(max_redirects=4), server.url_for("/r0"))


def test_redirect_to_another_scheme_is_refused(server: HTTPServer) -> None:
    server.expect_request("/a").respond_with_data(
        b"", status=301, headers={"Location": "file:///etc/passwd"}
    )
    with pytest.raises(RedirectFailure, match="not http"):
        fetch(FAST, server.url_for("/a"))


def test_only_http_and_https_urls_are_fetched() -> None:
    with pytest.raises(FetchError, match="not an http"):
        fetch(FAST, "ftp://127.0.0.1/feed.xml")


def test_permanent_redirects_are_noticed_temporary_ones_are_not(server: HTTPServer) -> None:
    server.expect_request("/old").respond_with_data(b"", status=301, headers={"Location": "/new"})
    server.expect_request("/moved").respond_with_data(
        b"", status=308, headers={"Location": "/temp"}
    )
    server.expect_request("/temp").respond_with_data(b"", status=302, headers={"Location": "/new"})
    server.expect_request("/new").respond_with_data(b"[]")
    permanent = fetch(FAST, server.url_for("/old"))
    assert isinstance(permanent, Fetched)
    assert permanent.moved_to == server.url_for("/new") == permanent.url
    mixed = fetch(FAST, server.url_for("/moved"))
    assert isinstance(mixed, Fetched) and mixed.moved_to is None and mixed.body == b"[]"


def test_concurrency_is_bounded(server: HTTPServer) -> None:
    lock = threading.Lock()
    active = [0, 0]  # now, most

    def tracked(request: Request) -> Response:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return Response(b"[]")

    server.expect_request("/t").respond_with_handler(tracked)
    config = local_fetch(concurrency=2)

    urls = [server.url_for("/t") + f"?n={n}" for n in range(6)]
    with Fetcher.open(config) as fetcher, ThreadPoolExecutor(6) as callers:
        assert len(list(callers.map(fetcher.fetch, urls))) == 6
    assert active[1] == 2  # six callers at once, never more than two requests in flight
