"""`aggregator build --dry-run`: what a build would change, writing nothing.

Every file is rendered in memory and compared with the bytes in the output folder, so
the answer is exactly what a build would write. A feed is *added* when its folder has
no feed yet, *rewritten* when any of its files would change, *removed* when its topic is
gone (the build then deletes the files it made for it); the items entering and leaving
are its RSS items now and after.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.config import Config
from aggregator.curate import SitePlan
from aggregator.rank import FeedPlan
from aggregator.render.paths import FeedSummary, RenderJob, archive_files, feed_files
from aggregator.render.site import render_job, render_site_list

ADDED, REWRITTEN, REMOVED, UNCHANGED = "added", "rewritten", "removed", "unchanged"
TOPICS_DIR = "topics"
FEED_FILE_NAMES = ("rss.xml", "atom.xml", "feed.json", "index.html")


@dataclass(frozen=True, slots=True)
class Item:
    guid: str
    title: str


@dataclass(frozen=True, slots=True)
class FeedChange:
    directory: str  # relative to the output folder; "" for the all-topics feed
    name: str  # the topic as shown, or "all topics"
    status: str  # ADDED, REWRITTEN, REMOVED or UNCHANGED
    files: tuple[str, ...]  # relative paths the build would write (or remove)
    entering: tuple[Item, ...]
    leaving: tuple[Item, ...]

    @property
    def folder(self) -> str:
        return f"{self.directory}/" if self.directory else "./"


@dataclass(frozen=True, slots=True)
class DryRun:
    feeds: tuple[FeedChange, ...]  # the all-topics feed, then the topics, then removed ones
    site_files: tuple[str, ...]  # OPML list and stylesheet that would be written

    def count(self, status: str) -> int:
        return sum(1 for feed in self.feeds if feed.status == status)

    @property
    def entering(self) -> int:
        return sum(len(feed.entering) for feed in self.feeds)

    @property
    def leaving(self) -> int:
        return sum(len(feed.leaving) for feed in self.feeds)

    @property
    def written(self) -> int:
        """Files the build would write."""
        kept = (feed for feed in self.feeds if feed.status != REMOVED)
        return sum(len(feed.files) for feed in kept) + len(self.site_files)

    @property
    def deleted(self) -> int:
        """Files of removed topics the build would delete."""
        return sum(len(feed.files) for feed in self.feeds if feed.status == REMOVED)


def dry_run(config: Config, site: SitePlan, output: Path) -> DryRun:
    summaries = [FeedSummary.of(plan) for plan in site.plans]
    changes = [_feed_change(config, site, summaries, plan, output) for plan in site.plans]
    planned = {plan.directory for plan in site.plans}
    changes.extend(_removed(output, planned, f"{config.site.title}: "))
    site_files = tuple(
        relative
        for relative, data in render_site_list(config.site, summaries).items()
        if _differs(output / relative, data)
    )
    return DryRun(tuple(changes), site_files)


def _feed_change(
    config: Config,
    site: SitePlan,
    summaries: Sequence[FeedSummary],
    plan: FeedPlan,
    output: Path,
) -> FeedChange:
    job = RenderJob(plan, feeds=True, page=True,
                    archive_pages=_archive_pages(config, plan, output))  # fmt: skip
    files = render_job(config.site, site.names, summaries, job)
    changed = tuple(name for name, data in files.items() if _differs(output / name, data))
    before = _items(output / feed_files(plan)[0])
    status = ADDED if before is None else REWRITTEN if changed else UNCHANGED
    now = [Item(record.guid, record.title) for record in plan.items]
    old = before or []
    old_guids, new_guids = {item.guid for item in old}, {item.guid for item in now}
    return FeedChange(
        directory=plan.directory,
        name="all topics" if plan.topic is None else plan.topic.name,
        status=status,
        files=changed,
        entering=tuple(item for item in now if item.guid not in old_guids),
        leaving=tuple(item for item in old if item.guid not in new_guids),
    )


def _archive_pages(config: Config, plan: FeedPlan, output: Path) -> int:
    """The archive documents the feed links to: those on disk (a build adds one only when
    the newest fills up), at least one once the feed has items. The archive documents
    themselves are not compared."""
    if not config.feeds.archive:
        return 0
    first = Path(archive_files(plan.directory, 1)[0])
    pages = 0
    while (output / first.with_name(f"rss-{pages + 1}.xml")).is_file():
        pages += 1
    return max(pages, 1 if plan.items else 0)


def _removed(output: Path, planned: set[str], prefix: str) -> list[FeedChange]:
    """Topic folders holding a feed of a topic that no longer exists."""
    gone = []
    topics = output / TOPICS_DIR
    if not topics.is_dir():
        return gone
    for folder in sorted(topics.iterdir()):
        directory = f"{TOPICS_DIR}/{folder.name}"
        rss = folder / "rss.xml"
        if directory in planned or folder.is_symlink() or not rss.is_file():
            continue
        files = tuple(f"{directory}/{n}" for n in FEED_FILE_NAMES if (folder / n).is_file())
        name = _feed_name(rss, prefix) or folder.name
        gone.append(FeedChange(directory, name, REMOVED, files, (), tuple(_items(rss) or ())))
    return gone


def _differs(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size != len(data) or path.read_bytes() != data
    except OSError:
        return True


def _parse(path: Path) -> ET.Element | None:
    """A feed we wrote, or None if there is none (or it is not an RSS document)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    return root if root.tag == "rss" else None


def _items(path: Path) -> list[Item] | None:
    root = _parse(path)
    if root is None:
        return None
    items = []
    for item in root.iterfind("channel/item"):
        guid = item.findtext("guid") or item.findtext("link") or ""
        items.append(Item(guid.strip(), (item.findtext("title") or "").strip()))
    return items


def _feed_name(path: Path, prefix: str) -> str | None:
    """The topic of a topic feed, from its title ("Site title: Topic")."""
    root = _parse(path)
    title = None if root is None else root.findtext("channel/title")
    return None if title is None else title.removeprefix(prefix)


def describe(run: DryRun) -> list[str]:
    """One block per feed that would change, then the site files."""
    lines = []
    for feed in run.feeds:
        if feed.status == UNCHANGED:
            continue
        moved = f"{len(feed.entering)} in, {len(feed.leaving)} out"
        if feed.status == ADDED:
            head = f"would add {feed.folder} ({feed.name}): {len(feed.entering)} " + (
                "item" if len(feed.entering) == 1 else "items"
            )
        elif feed.status == REMOVED:
            head = f"would remove {feed.folder} ({feed.name}): {moved}"
        else:
            names = ", ".join(Path(relative).name for relative in feed.files)
            head = f"would rewrite {feed.folder} ({feed.name}): {names}; {moved}"
        lines.append(head)
        lines.extend(f"  + {item.title} <{item.guid}>" for item in feed.entering)
        lines.extend(f"  - {item.title} <{item.guid}>" for item in feed.leaving)
    lines.extend(f"would write {relative}" for relative in run.site_files)
    return lines
