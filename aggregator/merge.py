"""Merge records that are the same story (same canonical link) into one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from aggregator.model import Record, Related


def group_by_link(records: Iterable[Record]) -> dict[str, list[Record]]:
    """The records of each guid (canonical link), in the order they came."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.guid, []).append(record)
    return groups


def merge_duplicates(records: Iterable[Record]) -> tuple[list[Record], int]:
    """Return one record per guid, and how many records were merged away.

    The merged item keeps the earliest publication time, the highest quality and
    heat and every topic; its text comes from the best-rated copy.
    """
    groups = group_by_link(records)
    merged = [group[0] if len(group) == 1 else merge_group(group) for group in groups.values()]
    return merged, sum(len(group) - 1 for group in groups.values())


def preference(record: Record) -> tuple[float, float, float, str, int]:
    """Sort key of the copy whose text a merged story shows: the best rated first."""
    return (-record.quality, -record.heat, record.published.timestamp(), record.origin,
            record.line or 0)  # fmt: skip


def merge_group(group: list[Record]) -> Record:
    ordered = sorted(group, key=preference)
    best = ordered[0]
    return replace(
        best,
        published=min(r.published for r in group),
        updated=max(r.updated for r in group),
        quality=max(r.quality for r in group),
        heat=max(r.heat for r in group),
        topics=union_topics(topic for r in ordered for topic in r.topics),
        images=next((r.images for r in ordered if r.images), ()),
        related=unique_related(ordered),
        excerpt=next((r.excerpt for r in ordered if r.excerpt), ""),
    )


def union_topics(topics: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for topic in topics:
        seen.setdefault(topic.casefold(), topic)
    return tuple(seen.values())


def unique_related(ordered: list[Record]) -> tuple[Related, ...]:
    seen: dict[str, Related] = {}
    for record in ordered:
        for related in record.related:
            seen.setdefault(related.url, related)
    return tuple(seen.values())
