"""When a fetch worker fetches a source again: its interval, backed off on failure,
never sooner than the server asked (Retry-After on a failure, Cache-Control max-age on
a success), never later than `[fetch] max_backoff`.

A pure function of plain values, so the rules are tested without a clock:

    success                 interval, or the response's max-age if that is longer
    failure n in a row      interval × 2^n (2×, 4×, 8× ...), or Retry-After if longer
    every case              at most max_backoff (a server cannot park a source for a year)
"""

from __future__ import annotations

from aggregator.config import Config, FetchConfig, SourceConfig

MAX_DOUBLINGS = 30  # 2^30 × any interval is past any max_backoff


def next_delay(
    fetch: FetchConfig,
    interval: float,
    *,
    failures: int,
    retry_after: float | None = None,
    max_age: float | None = None,
) -> float:
    """Seconds until a source is due again. `failures`: failed fetches in a row, this
    one included (0: this fetch succeeded)."""
    if failures:
        delay = interval * 2 ** min(failures, MAX_DOUBLINGS)
        if retry_after is not None:
            delay = max(delay, retry_after)
    else:
        delay = interval if max_age is None else max(interval, max_age)
    return min(delay, max(fetch.max_backoff, interval))


def source_interval(config: Config, source: SourceConfig) -> float:
    """A source's own `interval`, else `[fetch] interval`."""
    return source.interval if source.interval is not None else config.fetch.interval
