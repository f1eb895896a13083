"""WebSub publishing: after a build, tell the hub which feeds changed.

Subscribers' readers then get new stories pushed by the hub instead of polling. Only
feeds whose bytes changed are announced, one form-encoded `hub.mode=publish` POST per
feed URL (every hub understands that form). Announcements are remembered in the state
store (namespace "websub") before they are sent and forgotten once the hub accepted
them, so a hub that is down gets them again on the next run. A hub never fails a build:
a failure is one warning line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from aggregator.config import Config
from aggregator.errors import ConfigError, Problem
from aggregator.output.changes import public_urls
from aggregator.state import StateStore, open_store
from aggregator.wording import plural

NAMESPACE = "websub"
FEED_FILES = ("rss.xml", "atom.xml", "feed.json")


@dataclass(frozen=True, slots=True)
class Announcement:
    announced: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()  # left for the next run
    problem: Problem | None = None


def changed_feed_urls(base_url: str, changed: Iterable[str]) -> list[str]:
    """Public URLs of the feeds (the files that carry the hub link) among the paths a
    build changed (aggregator.output.changes: the same list CDN invalidation gets)."""
    feeds = [path for path in changed if path.rpartition("/")[2] in FEED_FILES]
    return sorted(set(public_urls(base_url, feeds)))


def announce(
    hub: str,
    urls: Iterable[str],
    store: StateStore | None,
    *,
    timeout: float = 10.0,
    user_agent: str = "aggregator",
) -> Announcement:
    """Send `urls` and any still pending from earlier runs; stop at the first failure."""
    queue = set(urls)
    if store is not None:
        queue |= set(store.items(NAMESPACE))
        store.put_many(NAMESPACE, [(url, b"") for url in sorted(queue)])  # before sending
    if not queue:
        return Announcement()
    announced: list[str] = []
    failure = None
    headers = {"User-Agent": user_agent}
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False) as client:
        for url in sorted(queue):
            failure = _publish(client, hub, url)
            if failure is not None:
                break  # the hub is down or refusing: do not hammer it with the rest
            announced.append(url)
    if store is not None:
        store.delete_many(NAMESPACE, announced)
    pending = tuple(sorted(queue.difference(announced)))
    problem = None
    if failure is not None:
        action = f"{plural(len(pending), 'feed URL')} will be announced again on the next run"
        problem = Problem(hub, None, None, f"WebSub hub {failure}", action, "warning")
    return Announcement(tuple(announced), pending, problem)


def _publish(client: httpx.Client, hub: str, url: str) -> str | None:
    """POST one publish ping; None if the hub accepted it, else what went wrong."""
    try:
        response = client.post(hub, data={"hub.mode": "publish", "hub.url": url})
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__}: {exc or 'no answer'})"
    if response.is_success:
        return None
    return f"answered HTTP {response.status_code} {response.reason_phrase}".rstrip()


def announce_build(
    config: Config,
    changed: Iterable[str],
    warn: Callable[[str], None],
) -> Announcement | None:
    """Announce a finished build's changed feeds (`changed`: BuildReport.changed_paths),
    if `[site] websub_hub` is set."""
    hub = config.site.websub_hub
    if not hub:
        return None
    urls = changed_feed_urls(config.site.base_url, changed)
    store: StateStore | None
    try:
        store = open_store(config, warn)
    except ConfigError as exc:
        warn(f"{exc}; warning: failed WebSub announcements will not be retried")
        store = None
    try:
        result = announce(
            hub,
            urls,
            store,
            timeout=config.fetch.timeout,
            user_agent=config.fetch.user_agent,
        )
    finally:
        if store is not None:
            store.close()
    if result.problem is not None:
        warn(str(result.problem))
    return result
