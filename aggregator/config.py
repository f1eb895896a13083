"""Load and check `config.toml`. Paths in it are relative to the file itself."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aggregator.errors import ConfigError, ConfigErrors
from aggregator.patterns import pattern_error

DEFAULT_TRACKING_PARAMS = (
    "utm_*", "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid",
    "_ga", "_gl", "igshid", "yclid", "ref", "ref_src", "cmpid", "esrc", "source",
    "ocid", "cid", "__twitter_impression", "spm", "sr_share",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SiteConfig:
    title: str
    base_url: str
    output_dir: Path
    description: str
    language: str
    author: str
    websub_hub: str | None = None  # announce changed feeds to this WebSub hub
    templates: Path | None = None  # a folder of HTML templates that override ours


DEFAULT_CACHE_CONTROL = "max-age=300"  # readers poll every few minutes; CDNs refresh as often
STORAGE_SCHEMES = ("s3",)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """`[site] output_url`: object storage the output folder is copied to after a build."""

    url: str  # s3://BUCKET/PREFIX, without a trailing slash
    bucket: str
    prefix: str  # "" for the bucket's top, else "a/b" (no slashes at either end)
    # Passed to s3fs.S3FileSystem (endpoint_url, client_kwargs, ...); not shown in reprs:
    # it may hold credentials.
    options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    cache_control: str = DEFAULT_CACHE_CONTROL

    def object_url(self, relative: str) -> str:
        """The object a file of the output folder becomes."""
        return f"{self.url}/{relative}"


DEFAULT_NEXT_PAGE = "page/{n}/index.json"  # the seed API: page N beside page 1's folder


FILTER_FIELDS = ("title", "excerpt", "provider", "topic", "link")


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """Keep/drop rules for records (a source's) or stories (a feed's); see aggregator.filters.

    `keep` and `drop` map a field (FILTER_FIELDS) to patterns: words matched whole and
    case-insensitively, or `/a regular expression/`. A record passes when it is at
    least `min_quality` and `min_heat`, matches no drop pattern, and matches a keep
    pattern if there are any.
    """

    keep: tuple[tuple[str, tuple[str, ...]], ...] = ()
    drop: tuple[tuple[str, tuple[str, ...]], ...] = ()
    min_quality: float | None = None
    min_heat: float | None = None


@dataclass(frozen=True, slots=True)
class FeedFilterConfig:
    """One `[[filters]]` table: rules for the feeds it names."""

    rules: FilterConfig
    topics: tuple[str, ...] | None = None  # topic names or slugs; None = every topic feed
    all_topics: bool = True  # whether it applies to the all-topics feed


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One `[[sources]]` table: a local `path` or a remote `url`."""

    path: Path | None = None
    url: str | None = None
    name: str = ""
    topics: tuple[str, ...] = ()  # added to every record from this source
    quality: float | None = None  # default for documents that carry none
    heat: float | None = None
    max_pages: int = 10
    next_page: str = DEFAULT_NEXT_PAGE  # relative to the first page's folder; {n} = page
    timeout: float | None = None  # overrides [fetch] timeout
    interval: float | None = None  # fetch workers: seconds between fetches ([fetch] interval)
    include: tuple[str, ...] = ()  # path globs, relative to `path`: only these files
    exclude: tuple[str, ...] = ()  # path globs, relative to `path`: never these
    filters: FilterConfig = field(default_factory=FilterConfig)


@dataclass(frozen=True, slots=True)
class FetchConfig:
    concurrency: int = 8
    timeout: float = 10.0  # seconds, per connect / read
    retries: int = 2
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_retry_after: float = 30.0  # cap on a server's Retry-After
    max_bytes: int = 10 * 1024 * 1024  # per response, counted after decompression
    max_redirects: int = 5
    request_deadline: float = 30.0  # seconds for one whole request: connect, headers, body
    source_deadline: float = 60.0  # seconds for all of one source's pages, retries included
    build_deadline: float = 300.0  # seconds for fetching every remote source
    allow_private_addresses: bool = False  # loopback, private, link-local, metadata hosts
    user_agent: str = "aggregator/0.1 (+https://github.com/aggregator-feeds/aggregator)"
    # Fetch workers (`aggregator fetch`, with [state] url):
    interval: float = 900.0  # seconds between two fetches of a source
    lease_seconds: float = 300.0  # a claimed source is another worker's after this
    max_backoff: float = 21_600.0  # cap on the wait after failures, Retry-After and max-age


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_file_bytes: int = 1024 * 1024
    max_yaml_depth: int = 32
    max_yaml_aliases: int = 64
    max_items_per_source: int = 10_000
    max_title_chars: int = 1_000
    max_excerpt_chars: int = 10_000
    max_topics_per_record: int = 50  # the rest are dropped with a warning
    max_url_chars: int = 2_048  # longer article links reject the record


@dataclass(frozen=True, slots=True)
class BuildConfig:
    state_path: Path  # SQLite file: fetch cache, parse cache, feed digests
    workers: int = 0  # parsing and rendering processes; 0 = one per core
    lock_timeout: float = 30.0  # seconds a build waits for another one to finish
    max_shrink: float = 0.5  # a source losing more of its records is held (--accept-shrink)


@dataclass(frozen=True, slots=True)
class StateConfig:
    """`[state]`: where the state lives. Without `url`, the SQLite file at `[build]
    state_path`; with it, a PostgreSQL database that fetch workers and the builder share."""

    url: str | None = None  # postgresql://user@host:port/database (a password: use PGPASSFILE)


STATE_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class RecordsConfig:
    default_quality: float = 50.0
    default_heat: float = 50.0
    tracking_params: tuple[str, ...] = DEFAULT_TRACKING_PARAMS
    excerpt_html: str = "sanitize"  # "sanitize" (allow-list) or "text" (strip all markup)


@dataclass(frozen=True, slots=True)
class RankingConfig:
    quality_weight: float = 1.0
    heat_weight: float = 1.0
    doubling_hours: float = 24.0
    coverage_weight: float = 0.5  # score per doubling of the outlets that cover a story
    provider_penalty: float = 0.5  # score each earlier item from the same provider costs
    max_per_provider: int = 0  # optional hard cap per feed; 0 = none


@dataclass(frozen=True, slots=True)
class ClusteringConfig:
    """How copies of one story under different links are found (aggregator.cluster)."""

    enabled: bool = True
    window_hours: float = 72.0  # copies lie within this time of the story's first copy
    title_similarity: float = 75.0  # rapidfuzz token_sort_ratio of the titles, 0-100


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    max_items: int = 50
    archive: bool = False  # RFC 5005 archive documents for every feed
    archive_page_size: int = 100  # items per archive document
    topics: tuple[TopicFeedConfig, ...] = ()  # [feeds.topics."NAME"]: one topic's settings

    def for_topic(self, key: str, slug: str) -> TopicFeedConfig | None:
        """The settings of the topic with this key or slug, if it has any."""
        for settings in self.topics:
            if settings.key in (key, slug):
                return settings
        return None

    def limit_for(self, key: str | None, slug: str | None) -> int:
        """A feed's max_items: its topic's own, or the site's (key None: all topics)."""
        own = None if key is None or slug is None else self.for_topic(key, slug)
        return (own.max_items if own else None) or self.max_items


@dataclass(frozen=True, slots=True)
class TopicFeedConfig:
    """`[feeds.topics."AI"]` (by name, or by slug): one topic feed's own settings."""

    key: str  # the topic key (case and spacing folded) or slug it was given as
    max_items: int | None = None  # overrides [feeds] max_items
    title: str | None = None  # the feed's title (default: "<site title>: <topic>")
    description: str | None = None
    hidden: bool = False  # no feed, page or OPML entry for this topic


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One `[[webhooks]]` table: where to POST each changed feed's new items."""

    url: str


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    site: SiteConfig
    sources: tuple[SourceConfig, ...]
    build: BuildConfig
    records: RecordsConfig = field(default_factory=RecordsConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    filters: tuple[FeedFilterConfig, ...] = ()  # [[filters]]
    webhooks: tuple[WebhookConfig, ...] = ()
    state: StateConfig = field(default_factory=StateConfig)
    storage: StorageConfig | None = None  # [site] output_url: also copy the output there


class ConfigProblems:
    """Every error found in one config file, each with the line of its key, so that one
    run reports them all. A getter that finds a bad value records it here and returns a
    stand-in, so reading goes on; `parse_config` raises them together at the end."""

    def __init__(self, path: Path, text: str = "") -> None:
        self.path = str(path)
        self._lines = key_lines(text)
        self.found: list[ConfigError] = []

    def add(self, key: str, expected: str) -> None:
        self.found.append(ConfigError(self.path, key, expected, line=self.line_of(key)))

    def add_error(self, error: ConfigError) -> None:
        """An error raised by a table reader (it stops that table, not the others)."""
        for one in error.errors:
            line = one.line if one.line is not None else self.line_of(one.key)
            self.found.append(ConfigError(one.path, one.key, one.expected, line=line))

    def line_of(self, key: str) -> int | None:
        """The line of `key`, else of the nearest table holding it (a missing key is
        reported at its table's header)."""
        parts = split_key(key)
        while parts:
            line = self._lines.get(dotted(parts))
            if line is not None:
                return line
            parts = parts[:-1]
        return None

    def raise_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda e: (e.line is None, e.line or 0))
            raise ordered[0] if len(ordered) == 1 else ConfigErrors(ordered)


class _Table:
    """A TOML table read with typed getters that name the key on error.

    With `problems`, a bad value is recorded there and the getter returns its default (or
    a stand-in of the right type) so the rest is still checked; without, it raises.
    """

    def __init__(
        self, path: Path, name: str, data: Any, problems: ConfigProblems | None = None
    ) -> None:
        self.path, self.name = str(path), name
        self.problems = problems
        if not isinstance(data, dict):
            self.error("", "expected a table")
            data = {}
        self.data = data

    def key(self, key: str) -> str:
        if not key:
            return self.name
        part = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
        return f"{self.name}.{part}" if self.name else part

    def error(self, key: str, expected: str) -> None:
        """Report `expected` for `key` ("" for the table itself)."""
        if self.problems is None:
            raise ConfigError(self.path, self.key(key), expected)
        self.problems.add(self.key(key), expected)

    def check_known(self, known: set[str]) -> None:
        for key in self.data:
            if key not in known:
                import difflib  # only for a setting misspelt

                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
                hint = (f"did you mean {close[0]!r}?" if close
                        else f"expected one of {', '.join(sorted(known))}")  # fmt: skip
                self.error(key, f"unknown setting; {hint}")

    def string(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            self.error(key, "expected a non-empty string")
            return default or ""
        return value

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float,
        maximum: float | None = None,
        exclusive: bool = False,
    ) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"expected a number, got {value!r}")
            return float(default)
        if value < minimum or (exclusive and value == minimum):
            bound = "greater than" if exclusive else "at least"
            self.error(key, f"expected a number {bound} {minimum}, got {value!r}")
            return float(default)
        if maximum is not None and value > maximum:
            self.error(key, f"expected a number at most {maximum}, got {value!r}")
            return float(default)
        return float(value)

    def optional_number(
        self, key: str, *, minimum: float, maximum: float | None = None
    ) -> float | None:
        if key not in self.data:
            return None
        return self.number(key, minimum, minimum=minimum, maximum=maximum)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {value!r}")
            return default
        return value

    def url(self, key: str) -> str:
        value = self.string(key)
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            self.error(key, f"expected an absolute http(s) URL, got {value!r}")
        return value

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(key, f"expected a whole number >= {minimum}, got {value!r}")
            return default
        return value

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(key, "expected a list of strings")
            return default
        return tuple(value)

    def table(self, key: str) -> _Table:
        return _Table(Path(self.path), self.key(key), self.data.get(key, {}), self.problems)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_PART = re.compile(
    r"""\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*(?:\[(\d+)\])?\s*(\.|$)"""
)


def split_key(text: str) -> list[str | int]:
    """`sources[2].path` -> ["sources", 2, "path"]; TOML's quoted parts are understood.
    Not a key: []."""
    parts: list[str | int] = []
    position = 0
    while position < len(text):
        match = _KEY_PART.match(text, position)
        if match is None or match.end() == position:
            return []
        bare, basic, literal, index, _ = match.groups()
        if basic is not None:
            try:
                basic = json.loads(f'"{basic}"')
            except ValueError:
                return []
        parts.append(next(part for part in (bare, basic, literal) if part is not None))
        if index is not None:
            parts.append(int(index))
        position = match.end()
    return parts


def dotted(parts: list[str | int]) -> str:
    """The inverse of split_key: how errors name a key."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            text += f".{name}" if text else name
    return text


def key_lines(text: str) -> dict[str, int]:
    """The line (from 1) where each table and key of a TOML document is first written,
    keyed as errors name them; `[[sources]]` tables are counted from 1 (`sources[1]`)."""
    lines: dict[str, int] = {}
    table: list[str | int] = []
    arrays: dict[str, int] = {}
    closing: str | None = None  # inside a multi-line string ending with this
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if closing is not None:
            if closing in line:
                closing = None
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            parts = split_key(line[2 : line.find("]]")])
            if parts:
                name = dotted(parts)
                arrays[name] = arrays.get(name, 0) + 1
                table = [*parts, arrays[name]]
                lines.setdefault(dotted(table), number)
                lines.setdefault(name, number)
            continue
        if line.startswith("["):
            parts = split_key(line[1 : line.find("]")])
            if parts:
                table = parts
                lines.setdefault(dotted(table), number)
            continue
        name, equals, value = line.partition("=")
        parts = split_key(name.strip()) if equals else []
        if not parts:
            continue
        full = [*table, *parts]
        for end in range(len(table) + 1, len(full) + 1):
            lines.setdefault(dotted(full[:end]), number)
        value = value.strip()
        for quotes in ('"""', "'''"):
            if value.startswith(quotes) and value.count(quotes) == 1:
                closing = quotes
    return lines


def locate(path: Path, key: str) -> int | None:
    """The line of `key` in the config file at `path`, for errors found after loading."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    return ConfigProblems(path, text).line_of(key)


def load_config(path: Path) -> Config:
    """Read `path` and return a checked Config, or raise ConfigError (ConfigErrors when
    there are several) naming each key and its line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        folder = "" if path.parent == Path(".") else f" {path.parent}"
        hint = f"'aggregator init{folder}' makes a new site there, or pass --config PATH"
        raise ConfigError(str(path), "(file)", f"config file not found; {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", f"cannot read: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(where.group(1)) if where else None
        raise ConfigError(str(path), "(syntax)", f"not valid TOML: {exc}", line=line) from None
    return parse_config(raw, path, text)


ROOT_TABLES = {
    "site", "sources", "records", "ranking", "feeds", "fetch", "limits", "build",
    "clustering", "filters", "webhooks", "state",
}  # fmt: skip


def parse_config(raw: dict[str, Any], path: Path, text: str = "") -> Config:
    """Check every table; all errors found are raised together (with lines from `text`)."""
    problems = ConfigProblems(path, text)
    root = _Table(path, "", raw, problems)
    root.check_known(ROOT_TABLES)
    base = path.parent

    def read(reader: Callable[[], Any], default: Any) -> Any:
        try:
            return reader()
        except ConfigError as error:  # a reader that raises stops only its own table
            problems.add_error(error)
            return default

    site = read(lambda: _site(root.table("site"), base), None)
    storage = read(lambda: _storage(root.table("site")), None)
    sources = read(lambda: _sources(root, base), ())
    build = read(lambda: _build(root.table("build"), base), None)
    records = read(lambda: _records(root.table("records")), None)
    ranking = read(lambda: _ranking(root.table("ranking")), None)
    feeds = read(lambda: _feeds(root.table("feeds")), None)
    fetch = read(lambda: _fetch(root.table("fetch")), None)
    limits = read(lambda: _limits(root.table("limits")), None)
    clustering = read(lambda: _clustering(root.table("clustering")), None)
    filters = read(lambda: _feed_filters(root), ())
    webhooks = read(lambda: _webhooks(root), ())
    state = read(lambda: _state(root.table("state")), None)
    problems.raise_any()
    return Config(
        path=path,
        site=site,
        sources=sources,
        build=build,
        records=records,
        ranking=ranking,
        feeds=feeds,
        fetch=fetch,
        limits=limits,
        clustering=clustering,
        filters=filters,
        webhooks=webhooks,
        state=state,
        storage=storage,
    )


def _state(table: _Table) -> StateConfig:
    table.check_known({"url"})
    if "url" not in table.data:
        return StateConfig()
    url = table.string("url")
    parts = urlsplit(url)
    if url and parts.scheme not in STATE_SCHEMES:
        shown = f"{parts.scheme}://..." if parts.scheme else repr(url.split("@")[-1])
        table.error("url", f"expected a postgresql://user@host/database URL, got {shown}")
    return StateConfig(url=url or None)


def _array_of_tables(root: _Table, key: str) -> list[_Table]:
    """The tables of `[[key]]`, named `key[1]`, `key[2]`, ... (counted as people count)."""
    raw = root.data.get(key, [])
    if not isinstance(raw, list):
        root.error(key, f"expected [[{key}]] tables")
        return []
    return [_Table(Path(root.path), f"{key}[{index}]", item, root.problems)
            for index, item in enumerate(raw, 1)]  # fmt: skip


def _webhooks(root: _Table) -> tuple[WebhookConfig, ...]:
    hooks = []
    for table in _array_of_tables(root, "webhooks"):
        table.check_known({"url"})
        hooks.append(WebhookConfig(url=table.url("url")))
    return tuple(hooks)


def _site(table: _Table, base: Path) -> SiteConfig:
    table.check_known(
        {"title", "base_url", "output_dir", "description", "language", "author", "websub_hub",
         "templates", *STORAGE_KEYS}
    )  # fmt: skip
    templates = None
    if "templates" in table.data:
        templates = base / table.string("templates")
        if not templates.is_dir():
            reason = f"expected an existing directory, {templates} is not one"
            table.error("templates", reason)
    base_url = table.url("base_url")
    hub = table.url("websub_hub") if "websub_hub" in table.data else None
    title = table.string("title")
    return SiteConfig(
        title=title,
        base_url=base_url.rstrip("/") + "/",
        output_dir=base / table.string("output_dir", "feeds"),
        description=table.string("description", f"{title}: ranked news by topic"),
        language=table.string("language", "en"),
        author=table.string("author", title),
        websub_hub=hub,
        templates=templates,
    )


STORAGE_KEYS = ("output_url", "output_options", "cache_control")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's bucket naming rules
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")  # printable ASCII: nothing that ends a header


def _storage(table: _Table) -> StorageConfig | None:
    """`output_url`, `output_options` and `cache_control` of `[site]`."""
    if "output_url" not in table.data:
        for key in STORAGE_KEYS[1:]:
            if key in table.data:
                table.error(key, "only used with site.output_url; set it, or remove this key")
        return None
    url = table.string("output_url")
    if not url:
        return None  # reported by table.string
    expected = "expected s3://BUCKET or s3://BUCKET/PREFIX (S3 or an S3-compatible store)"
    parts = urlsplit(url)
    if parts.scheme not in STORAGE_SCHEMES:
        table.error("output_url", f"{expected}, got {url!r}")
        return None
    if parts.query or parts.fragment or "\\" in url:
        table.error("output_url", f"{expected} with no query or fragment, got {url!r}")
        return None
    if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
        table.error("output_url", f"{expected}; {parts.netloc!r} is not a bucket name "
                                  "(3-63 lowercase letters, digits, dots and hyphens)")  # fmt: skip
        return None
    prefix = parts.path.strip("/")
    segments = prefix.split("/") if prefix else []
    if any(segment in ("", ".", "..") or not segment.isprintable() for segment in segments):
        table.error("output_url", f"{expected}; the prefix {parts.path!r} has an empty, "
                                  "'.' or '..' part")  # fmt: skip
        return None
    options = table.data.get("output_options", {})
    if not isinstance(options, dict):
        table.error("output_options", "expected a table of s3fs settings, e.g. "
                                      '{ endpoint_url = "https://s3.example.net" }')  # fmt: skip
        options = {}
    cache_control = table.string("cache_control", DEFAULT_CACHE_CONTROL)
    if not _HEADER_VALUE.fullmatch(cache_control):
        table.error("cache_control", f"expected a Cache-Control header value in printable "
                                     f"ASCII, got {cache_control!r}")  # fmt: skip
        cache_control = DEFAULT_CACHE_CONTROL
    if importlib.util.find_spec("s3fs") is None:  # found, not imported
        table.error("output_url", "needs s3fs, which is not installed: "
                                  "pip install 'aggregator[s3]'")  # fmt: skip
    bucket_url = f"s3://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    return StorageConfig(bucket_url, parts.netloc, prefix, dict(options), cache_control)


def _sources(root: _Table, base: Path) -> tuple[SourceConfig, ...]:
    raw = root.data.get("sources")
    if not isinstance(raw, list) or not raw:
        root.error("sources", "expected at least one [[sources]] table")
        return ()
    sources = []
    for index, item in enumerate(raw, 1):  # sources[1] is the first, as people count
        table = _Table(Path(root.path), f"sources[{index}]", item, root.problems)
        item = table.data
        table.check_known({"path", "url", "name", *REMOTE_SOURCE_KEYS, *PATH_SOURCE_KEYS,
                           *FILTER_KEYS})  # fmt: skip
        if ("path" in item) == ("url" in item):
            table.error("", "expected exactly one of 'path' or 'url'")
            continue
        filters = _filter_rules(table)
        if "path" in item:
            for key in sorted(REMOTE_SOURCE_KEYS & item.keys()):
                table.error(key, "only for 'url' sources")
            source_path = base / table.string("path")
            sources.append(
                SourceConfig(
                    path=source_path,
                    name=table.string("name", str(source_path)),
                    include=_globs(table, "include"),
                    exclude=_globs(table, "exclude"),
                    filters=filters,
                )
            )
        else:
            for key in sorted(PATH_SOURCE_KEYS & item.keys()):
                table.error(key, "only for 'path' sources")
            sources.append(replace(_remote_source(table), filters=filters))
    return tuple(sources)


# Settings only a `url` source takes.
REMOTE_SOURCE_KEYS = frozenset(
    {"topics", "quality", "heat", "max_pages", "next_page", "timeout", "interval"}
)


# Settings only a `path` source takes, and the filter settings any source or [[filters]] takes.
PATH_SOURCE_KEYS = frozenset({"include", "exclude"})
FILTER_KEYS = frozenset({"keep", "drop", "min_quality", "min_heat"})


def _globs(table: _Table, key: str) -> tuple[str, ...]:
    globs = table.strings(key, ())
    for glob in globs:
        if not glob.strip() or glob.startswith("/") or "\\" in glob:
            reason = f"expected globs relative to the source folder, got {glob!r}"
            table.error(key, reason)
    return globs


def _filter_rules(table: _Table) -> FilterConfig:
    """The keep/drop/min_* settings of a [[sources]] or [[filters]] table (checked here,
    compiled in aggregator.filters)."""
    rules = {}
    for kind in ("keep", "drop"):
        sub = table.table(kind)
        sub.check_known(set(FILTER_FIELDS))
        entries = []
        for name in FILTER_FIELDS:
            if name not in sub.data:
                continue
            value = sub.data[name]
            patterns = (value,) if isinstance(value, str) else sub.strings(name, ())
            for pattern in patterns:
                problem = pattern_error(pattern)
                if problem:
                    sub.error(name, problem)
            entries.append((name, tuple(patterns)))
        rules[kind] = tuple(entries)
    return FilterConfig(
        keep=rules["keep"],
        drop=rules["drop"],
        min_quality=table.optional_number("min_quality", minimum=0, maximum=100),
        min_heat=table.optional_number("min_heat", minimum=0, maximum=100),
    )


def _feed_filters(root: _Table) -> tuple[FeedFilterConfig, ...]:
    filters = []
    for table in _array_of_tables(root, "filters"):
        table.check_known({*FILTER_KEYS, "topics", "all_topics"})
        topics = None  # every topic feed; `topics = []`: none, only the all-topics feed
        if "topics" in table.data:
            topics = tuple(t.strip() for t in table.strings("topics", ()) if t.strip())
        all_topics = table.boolean("all_topics", not topics)
        filters.append(FeedFilterConfig(_filter_rules(table), topics, all_topics))
    return tuple(filters)


def _remote_source(table: _Table) -> SourceConfig:
    url = table.url("url")
    next_page = table.string("next_page", DEFAULT_NEXT_PAGE)
    if "{n}" not in next_page:
        table.error("next_page", "expected a template holding {n} (the page)")
    timeout = table.optional_number("timeout", minimum=0)
    if timeout == 0:
        table.error("timeout", "expected a number greater than 0")
    interval = table.optional_number("interval", minimum=1)
    return SourceConfig(
        url=url,
        name=table.string("name", url),
        topics=tuple(t.strip() for t in table.strings("topics", ()) if t.strip()),
        quality=table.optional_number("quality", minimum=0, maximum=100),
        heat=table.optional_number("heat", minimum=0, maximum=100),
        max_pages=table.integer("max_pages", 10, minimum=1),
        next_page=next_page,
        timeout=timeout,
        interval=interval,
    )


def _records(table: _Table) -> RecordsConfig:
    table.check_known({"default_quality", "default_heat", "tracking_params", "excerpt_html"})
    excerpt_html = table.string("excerpt_html", "sanitize")
    if excerpt_html not in ("sanitize", "text"):
        table.error("excerpt_html", f"expected 'sanitize' or 'text', got {excerpt_html!r}")
    return RecordsConfig(
        default_quality=table.number("default_quality", 50, minimum=0, maximum=100),
        default_heat=table.number("default_heat", 50, minimum=0, maximum=100),
        tracking_params=table.strings("tracking_params", DEFAULT_TRACKING_PARAMS),
        excerpt_html=excerpt_html,
    )


def _build(table: _Table, base: Path) -> BuildConfig:
    table.check_known({"state_path", "workers", "lock_timeout", "max_shrink"})
    return BuildConfig(
        state_path=base / table.string("state_path", ".aggregator/state.db"),
        workers=table.integer("workers", 0, minimum=0),
        lock_timeout=table.number("lock_timeout", 30.0, minimum=0),
        max_shrink=table.number("max_shrink", 0.5, minimum=0, maximum=1),
    )


def _fetch(table: _Table) -> FetchConfig:
    default = FetchConfig()
    table.check_known(set(FetchConfig.__slots__))
    return FetchConfig(
        concurrency=table.integer("concurrency", default.concurrency, minimum=1),
        timeout=table.number("timeout", default.timeout, minimum=0, exclusive=True),
        retries=table.integer("retries", default.retries, minimum=0),
        backoff=table.number("backoff", default.backoff, minimum=0),
        max_retry_after=table.number("max_retry_after", default.max_retry_after, minimum=0),
        max_bytes=table.integer("max_bytes", default.max_bytes, minimum=1),
        max_redirects=table.integer("max_redirects", default.max_redirects, minimum=0),
        request_deadline=table.number("request_deadline", default.request_deadline, minimum=0,
                                      exclusive=True),
        source_deadline=table.number("source_deadline", default.source_deadline, minimum=0,
                                     exclusive=True),
        build_deadline=table.number("build_deadline", default.build_deadline, minimum=0,
                                    exclusive=True),
        allow_private_addresses=table.boolean(
            "allow_private_addresses", default.allow_private_addresses
        ),
        user_agent=table.string("user_agent", default.user_agent),
        interval=table.number("interval", default.interval, minimum=1),
        lease_seconds=table.number("lease_seconds", default.lease_seconds, minimum=1),
        max_backoff=table.number("max_backoff", default.max_backoff, minimum=1),
    )


def _limits(table: _Table) -> LimitsConfig:
    default = LimitsConfig()
    table.check_known(set(LimitsConfig.__slots__))
    return LimitsConfig(
        **{
            name: table.integer(name, getattr(default, name), minimum=1)
            for name in LimitsConfig.__slots__
        }
    )


def _ranking(table: _Table) -> RankingConfig:
    default = RankingConfig()
    table.check_known(set(RankingConfig.__slots__))
    return RankingConfig(
        quality_weight=table.number("quality_weight", default.quality_weight, minimum=0),
        heat_weight=table.number("heat_weight", default.heat_weight, minimum=0),
        doubling_hours=table.number(
            "doubling_hours", default.doubling_hours, minimum=0, exclusive=True
        ),
        coverage_weight=table.number("coverage_weight", default.coverage_weight, minimum=0),
        provider_penalty=table.number("provider_penalty", default.provider_penalty, minimum=0),
        max_per_provider=table.integer("max_per_provider", default.max_per_provider, minimum=0),
    )


def _clustering(table: _Table) -> ClusteringConfig:
    default = ClusteringConfig()
    table.check_known(set(ClusteringConfig.__slots__))
    return ClusteringConfig(
        enabled=table.boolean("enabled", default.enabled),
        window_hours=table.number("window_hours", default.window_hours, minimum=0),
        title_similarity=table.number(
            "title_similarity", default.title_similarity, minimum=0, maximum=100
        ),
    )


def _feeds(table: _Table) -> FeedsConfig:
    table.check_known({"max_items", "archive", "archive_page_size", "topics"})
    topics = table.table("topics")
    return FeedsConfig(
        max_items=table.integer("max_items", 50, minimum=1),
        archive=table.boolean("archive", False),
        archive_page_size=table.integer("archive_page_size", 100, minimum=1),
        topics=tuple(_topic_feed(topics.table(name), name) for name in topics.data),
    )


def _topic_feed(table: _Table, name: str) -> TopicFeedConfig:
    from aggregator.topics import topic_key  # topic identity lives there

    table.check_known({"max_items", "title", "description", "hidden"})
    if not name.strip():
        raise ConfigError(table.path, table.name, "expected a topic name or slug")
    return TopicFeedConfig(
        key=topic_key(name),
        max_items=table.integer("max_items", 0, minimum=1) if "max_items" in table.data else None,
        title=table.string("title") if "title" in table.data else None,
        description=table.string("description") if "description" in table.data else None,
        hidden=table.boolean("hidden", False),
    )
