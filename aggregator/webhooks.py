"""Webhooks: after a build, one POST per changed feed with the items it gained.

The body is a JSON Feed 1.1 document (`application/feed+json`) holding only the new
items, so any JSON Feed parser reads it. "New" means the feed never showed the item
before (the feed history, aggregator.archive). Deliveries are queued in the state store
(namespace "webhooks") in the same transaction that records the history, and removed
once the receiver answers 2xx; a receiver that fails gets them again on the next run,
as WebSub pings are retried. A webhook never fails a build: a failure is one warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aggregator.archive import FeedChange
from aggregator.config import Config
from aggregator.errors import ConfigError, Problem
from aggregator.state import StateStore, open_store

if TYPE_CHECKING:
    import httpx  # imported when delivering: every build queues, few deliver

NAMESPACE = "webhooks"
CONTENT_TYPE = "application/feed+json"


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: int = 0
    pending: int = 0
    problems: tuple[Problem, ...] = ()


def queue(
    store: StateStore, config: Config, changes: Sequence[FeedChange], names: dict[str, str]
) -> None:
    """Queue one delivery per webhook for every feed that gained items."""
    if not config.webhooks:
        return
    from aggregator.render.jsonfeed import render_json_feed  # feedgen: only with webhooks

    numbers = [int(key.rpartition("\n")[2]) for key in store.items(NAMESPACE)]
    number = max(numbers, default=0)
    entries = []
    for change in changes:
        if not change.new:
            continue
        body = render_json_feed(config.site, replace(change.plan, items=change.new), names)
        number += 1
        entries.extend((f"{hook.url}\n{number:012d}", body) for hook in config.webhooks)
    store.put_many(NAMESPACE, entries)


def deliver(
    store: StateStore,
    urls: Sequence[str],
    *,
    timeout: float = 10.0,
    user_agent: str = "aggregator",
) -> Delivery:
    """Send every queued delivery to `urls`, oldest first; a receiver that fails gets no
    more this run (the rest wait for the next). Deliveries to a webhook no longer
    configured are dropped."""
    import httpx

    queued = store.items(NAMESPACE)
    gone = [key for key in queued if key.partition("\n")[0] not in urls]
    store.delete_many(NAMESPACE, gone)
    pending = sorted((key, body) for key, body in queued.items() if key not in set(gone))
    if not pending:
        return Delivery()
    delivered, problems, failed = [], [], set()
    headers = {"User-Agent": user_agent, "Content-Type": CONTENT_TYPE}
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False) as client:
        for key, body in pending:
            url = key.partition("\n")[0]
            if url in failed:
                continue
            failure = _post(client, url, body)
            if failure is None:
                delivered.append(key)
                continue
            failed.add(url)
            left = sum(1 for other, _ in pending if other.partition("\n")[0] == url)
            left -= sum(1 for done in delivered if done.partition("\n")[0] == url)
            action = f"{left} delivery(ies) will be retried on the next run"
            problems.append(Problem(url, None, None, f"webhook {failure}", action, "warning"))
    store.delete_many(NAMESPACE, delivered)
    return Delivery(len(delivered), len(pending) - len(delivered), tuple(problems))


def _post(client: httpx.Client, url: str, body: bytes) -> str | None:
    import httpx

    try:
        response = client.post(url, content=body)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__}: {exc or 'no answer'})"
    if response.is_success:
        return None
    return f"answered HTTP {response.status_code} {response.reason_phrase}".rstrip()


def deliver_build(config: Config, warn: Callable[[str], None]) -> Delivery | None:
    """After a build: send what is queued, if `[[webhooks]]` are configured."""
    if not config.webhooks:
        return None
    try:
        store = open_store(config, warn)
    except ConfigError as exc:
        warn(f"{exc}; warning: webhooks not delivered")
        return None
    with store:
        urls = [hook.url for hook in config.webhooks]
        result = deliver(store, urls, timeout=config.fetch.timeout,
                         user_agent=config.fetch.user_agent)  # fmt: skip
    for problem in result.problems:
        warn(str(problem))
    return result
