"""Check, normalise and canonicalise links."""

from __future__ import annotations

import html
import ipaddress
import re
from fnmatch import fnmatchcase
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

from aggregator.errors import shown

# Characters left as they are when percent-encoding a path, query or fragment.
_SAFE = "/:@!$&'()*+,;=?~%-._"
# A link normalise_url would return unchanged: lower-case http(s), a plain ASCII host,
# a path and an optional query of characters that need no quoting, no '&' (entities),
# no port, user or fragment. Most real links are like this; they skip the full work.
_NORMAL_URL = re.compile(
    r"https?://(?:[a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63}"
    r"/[A-Za-z0-9_.~/:@!$'()*+,;=%-]*(?:\?[A-Za-z0-9_.~/:@!$'()*+,;=%?-]+)?"
)
# A host name after IDNA encoding: dot-separated labels of letters, digits, '-' and '_'.
_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")


def normalise_url(value: object) -> str:
    """Return `value` as an absolute, properly encoded http(s) URL or raise ValueError.

    Real records carry HTML entities (`&#038;`), spaces and non-ASCII in links;
    IDN hosts become punycode so the result is plain ASCII.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a URL string, got {type(value).__name__}")
    if _NORMAL_URL.fullmatch(value):
        return value
    text = html.unescape(value.strip())
    if not text:
        raise ValueError("empty URL")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        given = f"{scheme}:" if scheme else "no scheme (relative link)"
        raise ValueError(f"only absolute http(s) links are allowed, got {given}")
    host = normalise_host(parts.hostname or "")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("URL has an invalid port") from None
    netloc = host if port is None else f"{host}:{port}"
    if parts.username or parts.password:
        raise ValueError("URL carries a user name or password")
    return urlunsplit(
        (
            scheme,
            netloc,
            quote(parts.path, safe=_SAFE) or "/",
            quote(parts.query, safe=_SAFE),
            quote(parts.fragment, safe=_SAFE),
        )
    )


def normalise_host(value: str) -> str:
    """A host as it may appear in a URL: IDNs as punycode, IPv6 in brackets; or ValueError."""
    host = value.strip().lower()
    if not host:
        raise ValueError("URL has no host")
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host.strip('[]')).compressed}]"
        except ValueError:
            raise ValueError(f"host {shown(value)} is not a valid IPv6 address") from None
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"host {shown(value)} is not a valid domain name") from None
    if not _HOST.fullmatch(encoded):
        raise ValueError(f"host {shown(value)} is not a valid domain name")
    return encoded


def resolve_url(value: object, base_url: str | None = None) -> str:
    """`normalise_url`, after resolving a relative `value` against `base_url` when given.

    `base_url` is the URL of the document the link was found in (a remote source's
    page); local files have none, so their links must already be absolute.
    """
    if base_url and isinstance(value, str):
        text = html.unescape(value.strip())
        if text:
            value = urljoin(base_url, text)
    return normalise_url(value)


def canonical_url(url: str, tracking_params: tuple[str, ...]) -> str:
    """The identity of an article: tracking parameters, fragment and trailing slash removed.

    `url` must already be normalised (scheme and host are lower-case).
    """
    if "?" not in url and "#" not in url:  # the common case: only trailing slashes to drop
        kept = url.rstrip("/")
        return kept if kept.count("/") > 2 else kept + "/"  # the root keeps its slash
    return canonical_url_full(url, tracking_params)


def canonical_url_full(url: str, tracking_params: tuple[str, ...]) -> str:
    """`canonical_url` without its shortcut for links with no query or fragment (kept
    apart so tests can show the shortcut gives the same result)."""
    parts = urlsplit(url)
    # Filter the raw `key=value` pairs so the values we keep stay byte-for-byte as they were.
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and not _is_tracking(unquote_plus(pair.partition("=")[0]), tracking_params)
    ]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "&".join(kept), ""))


def _is_tracking(key: str, patterns: tuple[str, ...]) -> bool:
    key = key.lower()
    return any(fnmatchcase(key, pattern) for pattern in patterns)
