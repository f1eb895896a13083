"""Fetch one URL the way a careful feed reader does.

Bounded concurrency, connect/read timeouts, redirects followed by hand (limit, loop
detection, http/https only, permanent moves noticed), retries with exponential
backoff on connection errors, 5xx and 429 (honouring Retry-After, capped), a
conditional GET (ETag / Last-Modified) and a body cap counted after decompression.
The outcome is a typed result (Fetched, NotModified) or a typed FetchError.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import httpcore
import httpx

from aggregator.config import FetchConfig
from aggregator.errors import AggregatorError
from aggregator.sources.decompress import ContentDecodingError, accept_encoding, decoder_for

DRAIN_LIMIT = 64 * 1024  # the most of an unwanted body read to keep a connection alive
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
ACCEPT = (
    "application/json, application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, text/markdown;q=0.9, application/yaml;q=0.9, "
    "*/*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional GET sends back: the last response's ETag and Last-Modified."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True, slots=True)
class Fetched:
    """A 2xx response with its whole (decoded) body."""

    url: str  # where the body came from, after redirects
    body: bytes
    content_type: str
    validators: Validators
    moved_to: str | None = None  # final URL when every redirect on the way was permanent
    max_age: float | None = None  # Cache-Control max-age: fresh for this many seconds


@dataclass(frozen=True, slots=True)
class NotModified:
    """304: the copy we hold is still current."""

    url: str
    moved_to: str | None = None
    max_age: float | None = None


class FetchError(AggregatorError):
    """The URL could not be fetched; `reason` is one line for the report."""

    retryable = False

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class ConnectionFailed(FetchError):
    """DNS failure, refused or broken connection."""

    retryable = True


class TimedOut(ConnectionFailed):
    pass


class HTTPStatusFailure(FetchError):
    """A status that is neither success, redirect nor 304."""

    def __init__(self, url: str, status: int, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(url, f"HTTP {status} {_phrase(status)}")

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status == 429 or self.status >= 500


class Gone(HTTPStatusFailure):
    """410: the publisher says the resource is gone for good."""

    def __init__(self, url: str) -> None:
        super().__init__(url, 410)
        self.reason = "HTTP 410 Gone: removed for good by its server; drop it from the config"


class DeadlinePassed(TimedOut):
    """A request, a source or the build's fetching took longer than its deadline."""


class RefusedAddress(FetchError):
    """The host resolves to a loopback, private, link-local or otherwise non-public
    address, and `[fetch] allow_private_addresses` is false."""


class RedirectFailure(FetchError):
    """A redirect loop, too many redirects, or a redirect to something not http(s)."""


class ResponseTooLarge(FetchError):
    pass


class BadContentEncoding(FetchError):
    pass


FetchResult = Fetched | NotModified
NO_VALIDATORS = Validators()  # an unconditional GET


@dataclass(frozen=True, slots=True)
class _Redirect:
    status: int
    target: str


Sleep = Callable[[float], object]
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Deadline:
    """A moment (time.monotonic) by which something must be done, and what it is, for
    the message when it passes."""

    at: float
    what: str

    @classmethod
    def after(cls, seconds: float, what: str) -> Deadline:
        return cls(time.monotonic() + seconds, what)

    def left(self) -> float:
        return self.at - time.monotonic()

    def earliest(self, other: Deadline | None) -> Deadline:
        return self if other is None or self.at <= other.at else other


class _Refused(Exception):
    """Raised inside httpx's stack (which passes it on untouched) for RefusedAddress."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# What `[fetch] allow_private_addresses` allows: where internal feed servers live. No
# feed lives at a link-local or cloud metadata address, so those are never fetched.
ALLOWABLE_KINDS = frozenset({"a loopback address", "a private address"})


def address_kind(address: str) -> str | None:
    """What kind of non-public address `address` is ("a loopback address"); None if public."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global:
        return None
    if str(ip) in ("169.254.169.254", "fd00:ec2::254"):
        return "a cloud metadata address"
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    return "not a public address"


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend with two guards a feed fetcher needs:

    - every read, write and connect waits at most until the current request's deadline
      (a thread's own, see `until`), so a server dripping a byte per second cannot hold
      a build: httpx's timeouts apply to each read only;
    - host names are resolved here and a non-public address is refused (loopback and
      private ones only unless allowed), at the first request and at every redirect;
      the connection goes to the address checked (no second lookup to rebind).
    """

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._local = threading.local()
        self._allow_private = allow_private

    @contextmanager
    def until(self, deadline: Deadline) -> Iterator[None]:
        before = getattr(self._local, "deadline", None)
        self._local.deadline = deadline
        try:
            yield
        finally:
            self._local.deadline = before

    def timeout(self, timeout: float | None, late: type[Exception]) -> float | None:
        deadline: Deadline | None = getattr(self._local, "deadline", None)
        if deadline is None:
            return timeout
        left = deadline.left()
        if left <= 0:
            raise late(deadline.what)
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self.timeout(timeout, httpcore.ConnectTimeout)
        addresses = self._allowed_addresses(host, port)
        for position, address in enumerate(addresses):
            try:
                stream = self._inner.connect_tcp(
                    address, port, self.timeout(timeout, httpcore.ConnectTimeout),
                    local_address, socket_options,
                )  # fmt: skip
            except httpcore.ConnectError:
                if position == len(addresses) - 1:
                    raise
                continue
            return _DeadlineStream(stream, self)
        raise httpcore.ConnectError(f"no address for {host}")

    def _allowed_addresses(self, host: str, port: int) -> list[str]:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"DNS lookup failed ({exc.strerror or exc})") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        for address in addresses:  # all of them: a name may resolve to a public and a private
            kind = address_kind(address)
            if kind is not None and not (self._allow_private and kind in ALLOWABLE_KINDS):
                what = f"{address} is" if host == address else f"{host} resolves to {address},"
                setting = "([fetch] allow_private_addresses)" if kind in ALLOWABLE_KINDS else (
                    "(never fetched)")  # fmt: skip
                raise _Refused(f"{what} {kind}; refused {setting}")
        return addresses

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, backend: _GuardedBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self._backend.timeout(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout), self._backend
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Fetcher:
    """Fetches URLs over one shared httpx client, at most `concurrency` at a time.

    Thread-safe: a build calls `fetch` from a pool of `concurrency` threads. (Plain
    threads over httpx's sync client cost a third of the CPU of its asyncio client.)
    """

    def __init__(
        self,
        config: FetchConfig,
        client: httpx.Client,
        *,
        sleep: Sleep = time.sleep,
        now: Clock = utc_now,
        backend: _GuardedBackend | None = None,
    ) -> None:
        self._config = config
        self._client = client
        self._backend = backend or _GuardedBackend(allow_private=True)
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._sleep = sleep
        self._now = now
        self._lock = threading.Lock()
        self._requests = 0

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, retries and redirects included."""
        return self._requests

    @classmethod
    @contextmanager
    def open(
        cls, config: FetchConfig, *, sleep: Sleep = time.sleep, now: Clock = utc_now
    ) -> Iterator[Fetcher]:
        limits = httpx.Limits(max_connections=config.concurrency)
        transport = httpx.HTTPTransport(limits=limits)
        backend = _GuardedBackend(config.allow_private_addresses)
        # httpx takes no network backend of its own; its pool (httpcore) does.
        if not hasattr(transport._pool, "_network_backend"):
            raise RuntimeError("httpx/httpcore changed: cannot install the fetch guards")
        transport._pool._network_backend = backend
        client = httpx.Client(
            follow_redirects=False,  # followed by hand: loop detection, scheme check
            timeout=httpx.Timeout(config.timeout),
            limits=limits,
            transport=transport,
            headers={
                "User-Agent": config.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": accept_encoding(),
            },
        )
        with client:
            yield cls(config, client, sleep=sleep, now=now, backend=backend)

    def fetch(
        self,
        url: str,
        validators: Validators = NO_VALIDATORS,
        timeout: float | None = None,
        deadline: Deadline | None = None,
    ) -> FetchResult:
        """GET `url`, retrying what is worth retrying; raise FetchError when it fails.

        Each request (its redirects included) must be done within `[fetch]
        request_deadline`, and everything, retries included, by `deadline`."""
        attempt = 0
        while True:
            try:
                with self._slots:
                    return self._follow(url, validators, timeout or self._config.timeout,
                                        deadline)  # fmt: skip
            except FetchError as exc:
                if not exc.retryable or attempt >= self._config.retries:
                    raise
                delay = self._delay(exc, attempt)
                if deadline is not None and delay >= deadline.left():
                    raise
                self._sleep(delay)
                attempt += 1

    def _delay(self, exc: FetchError, attempt: int) -> float:
        if isinstance(exc, HTTPStatusFailure) and exc.retry_after is not None:
            return min(exc.retry_after, self._config.max_retry_after)
        return self._config.backoff * 2**attempt

    def _follow(
        self, url: str, validators: Validators, timeout: float, deadline: Deadline | None
    ) -> FetchResult:
        limit = self._config.request_deadline
        request = Deadline.after(limit, f"no complete response within {limit:g} s "
                                 "([fetch] request_deadline)").earliest(deadline)  # fmt: skip
        chain = [url]
        permanent = True
        while True:
            current = chain[-1]
            _check_scheme(url, current)
            try:
                with self._backend.until(request):
                    response = self._get(current, validators, timeout, request)
            except RefusedAddress as exc:
                if current == url:
                    raise
                raise RefusedAddress(url, f"redirected to {current}: {exc.reason}") from None
            if isinstance(response, _Redirect):
                target = response.target
                permanent = permanent and response.status in PERMANENT_REDIRECTS
                if target in chain:
                    raise RedirectFailure(url, "redirect loop: " + " -> ".join([*chain, target]))
                if len(chain) > self._config.max_redirects:
                    raise RedirectFailure(url, f"more than {self._config.max_redirects} redirects")
                chain.append(target)
                continue
            moved_to = chain[-1] if permanent and len(chain) > 1 else None
            if isinstance(response, NotModified):
                return NotModified(chain[-1], moved_to, response.max_age)
            return Fetched(response.url, response.body, response.content_type,
                           response.validators, moved_to, response.max_age)  # fmt: skip

    def _get(
        self, url: str, validators: Validators, timeout: float, deadline: Deadline
    ) -> FetchResult | _Redirect:
        """One request, without following redirects."""
        with self._lock:
            self._requests += 1
        try:
            with self._client.stream(
                "GET", url, headers=validators.headers(), timeout=httpx.Timeout(timeout)
            ) as response:
                status = response.status_code
                if not 200 <= status < 300:
                    _drain(response)
                if status in REDIRECTS:
                    location = response.headers.get("location", "").strip()
                    if not location:
                        raise FetchError(url, f"HTTP {status} redirect without a Location")
                    return _Redirect(status, urldefrag(urljoin(url, location)).url)
                max_age = parse_max_age(response.headers.get("cache-control"))
                if status == 304:
                    return NotModified(url, max_age=max_age)
                if 200 <= status < 300:
                    body = self._read_body(url, response)
                    return Fetched(
                        url,
                        body,
                        response.headers.get("content-type", ""),
                        Validators(
                            response.headers.get("etag"), response.headers.get("last-modified")
                        ),
                        max_age=max_age,
                    )
                raise self._status_failure(url, response)
        except _Refused as exc:
            raise RefusedAddress(url, exc.reason) from None
        except httpx.TimeoutException:
            if deadline.left() <= 0:
                raise DeadlinePassed(url, deadline.what) from None
            raise TimedOut(url, f"timed out after {timeout:g} s") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise FetchError(url, f"unusable URL ({exc})") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(url, _describe(exc)) from None

    def _read_body(self, url: str, response: httpx.Response) -> bytes:
        """Stream the body, decoding as it comes, and stop once it passes the cap."""
        limit = self._config.max_bytes
        too_large = ResponseTooLarge(url, f"response body larger than {limit} bytes; not read")
        encoding = response.headers.get("content-encoding", "")
        length = response.headers.get("content-length", "")
        if not encoding and length.isdigit() and int(length) > limit:
            raise too_large
        try:
            decoder = decoder_for(encoding)
            parts: list[bytes] = []
            size = 0
            for raw in response.iter_raw():
                for block in decoder.feed(raw):
                    size += len(block)
                    if size > limit:
                        raise too_large
                    parts.append(block)
            for block in decoder.flush():
                size += len(block)
                if size > limit:
                    raise too_large
                parts.append(block)
        except ContentDecodingError as exc:
            raise BadContentEncoding(url, str(exc)) from None
        return b"".join(parts)

    def _status_failure(self, url: str, response: httpx.Response) -> HTTPStatusFailure:
        status = response.status_code
        if status == 410:
            return Gone(url)
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._now())
        return HTTPStatusFailure(url, status, retry_after)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_max_age(value: str | None) -> float | None:
    """Seconds a response stays fresh from its Cache-Control header (`max-age=N`), or
    None: no such directive, or `no-store` / `no-cache` (fetch as often as scheduled)."""
    if not value:
        return None
    max_age = None
    for directive in value.lower().split(","):
        name, _, argument = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return None
        if name == "max-age" and argument.strip().strip('"').isdigit():
            max_age = float(argument.strip().strip('"'))
    return max_age


def fetch_url(
    config: FetchConfig,
    url: str,
    validators: Validators = NO_VALIDATORS,
    *,
    sleep: Sleep = time.sleep,
    now: Clock = utc_now,
) -> FetchResult:
    """Fetch one URL (for scripts and tests)."""
    with Fetcher.open(config, sleep=sleep, now=now) as fetcher:
        return fetcher.fetch(url, validators)


def _drain(response: httpx.Response) -> None:
    """Read a small unwanted body (304, redirect, error page) so the connection is reused.

    A response left unread makes httpx close its connection, and a new one costs more
    than the request itself. Bodies over DRAIN_LIMIT are not worth it: they are dropped.
    """
    size = 0
    try:
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > DRAIN_LIMIT:
                return
    except httpx.HTTPError:
        pass  # the status is what matters; the connection is simply not reused


def _check_scheme(source: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        if url == source:
            raise FetchError(source, f"not an http(s) URL: {url}")
        raise RedirectFailure(source, f"redirected to a URL that is not http(s): {url}")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "(unknown status)"


def _describe(exc: httpx.TransportError) -> str:
    """One short phrase for a transport error, from the OS error underneath when there is one."""
    cause = _root_os_error(exc)
    if isinstance(cause, socket.gaierror):
        return f"DNS lookup failed ({cause.strerror or cause})"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset by the server"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({text})"
    return f"connection broken ({text})"


def _root_os_error(exc: BaseException) -> OSError | None:
    found: OSError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            found = current
        current = current.__cause__ or current.__context__
    return found
