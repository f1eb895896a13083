"""Static HTML pages: `index.html` and `topics/<slug>/index.html`.

Jinja2 templates (package data in aggregator/templates/) with autoescaping on. Links
are relative, so the pages work on any host, under any path and in a local preview.
Every date shown comes from the records, never the clock.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)
from jinja2.bccache import Bucket

from aggregator.config import SiteConfig
from aggregator.model import Record
from aggregator.rank import FeedPlan, Topic
from aggregator.render.feeds import copy_label, feed_description, feed_title
from aggregator.render.paths import JSON_FEED_NAME, OPML_NAME, FeedSummary, newest_date, page_path
from aggregator.topics import topic_key
from aggregator.wording import plural

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeedHrefs:
    """A feed's files, relative to the page that links to them."""

    title: str
    rss: str
    atom: str
    json: str


@dataclass(frozen=True, slots=True)
class TopicView:
    name: str
    slug: str
    count: int  # stories about the topic, before the per-feed caps
    page: str
    feeds: FeedHrefs
    shown: int = 0  # the items its feeds hold: what a subscriber gets


@dataclass(frozen=True, slots=True)
class ImageView:
    url: str
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class StoryView:
    title: str
    url: str
    provider: str
    published: datetime
    excerpt: str
    image: ImageView | None
    topics: tuple[tuple[str, str], ...]  # (name, page href)
    copies: tuple[tuple[str, str], ...] = ()  # other copies of the story: (outlet, link)


def story_count(shown: int, total: int) -> str:
    """What a feed holds against what there is: "3 stories", or "50 of 94 stories" when
    the feed keeps only the top ones, so the page says what a subscriber gets."""
    if shown == total:
        return plural(total, "story", "stories")
    return f"{shown} of {plural(total, 'story', 'stories')}"


def date_text(moment: datetime) -> str:
    """`24 November 2026`, spelled the same whatever the machine's locale."""
    moment = moment.astimezone(UTC)
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


class _CompiledTemplates(FileSystemBytecodeCache):
    """The templates as compiled by an earlier build (Jinja's bytecode cache, in a folder
    of this user's under the temporary directory, checked against each template's
    source): a build that renders a few pages does not compile every template again
    (benchmarks/bench_build.py, "10 heat edits"). A cache that cannot be read or written
    is no cache: the template is compiled."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, EOFError, ValueError, TypeError):
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _compiled_templates() -> FileSystemBytecodeCache | None:
    try:
        return _CompiledTemplates()
    except (OSError, RuntimeError):  # no private folder to be had under the temp dir
        return None


@functools.cache  # templates compile once per process, not once per page
def environment(templates: Path | None = None) -> Environment:
    """Our templates; a template of the same name in `templates` ([site] templates)
    takes their place (and may `{% extends %}` or `{% include %}` ours)."""
    ours = PackageLoader("aggregator", "templates")
    loader = ours if templates is None else ChoiceLoader([FileSystemLoader(templates), ours])
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=_compiled_templates(),
    )
    env.filters["date_text"] = date_text
    env.globals["story_count"] = story_count
    env.filters["isodate"] = lambda moment: moment.astimezone(UTC).isoformat()
    return env


def render_pages(site: SiteConfig, plans: Sequence[FeedPlan]) -> dict[str, bytes]:
    """Every page, keyed by its path relative to the output folder."""
    feeds = [FeedSummary.of(plan) for plan in plans]
    return {page_path(plan): render_page(site, plan, feeds) for plan in plans}


def render_page(site: SiteConfig, plan: FeedPlan, feeds: Sequence[FeedSummary]) -> bytes:
    """The page of one feed: the index for the all-topics feed, else the topic's page.
    `feeds` summarises every feed of the site, for the links between pages."""
    env = environment(site.templates)
    topics = {feed.topic.key: feed for feed in feeds if feed.topic is not None}
    if plan.topic is None:
        return _index(env, site, plan, topics)
    main = next(feed for feed in feeds if feed.topic is None)
    return _topic_page(env, site, plan, main, topics)


def _index(
    env: Environment, site: SiteConfig, main: FeedPlan, topics: dict[str, FeedSummary]
) -> bytes:
    return _render(
        env,
        "index.html",
        site=site,
        root="",
        title=site.title,
        description=feed_description(site, None),
        feeds=_feed_hrefs(site, main, ""),
        all_feeds=_feed_hrefs(site, main, ""),
        topics=_topic_views(site, topics, ""),
        stories=_stories(main.items, topics, ""),
        total=main.total,
        updated=newest_date(main),
    )


def _topic_page(
    env: Environment,
    site: SiteConfig,
    plan: FeedPlan,
    main: FeedSummary,
    topics: dict[str, FeedSummary],
) -> bytes:
    assert plan.topic is not None
    root = "../" * (plan.directory.count("/") + 1)
    return _render(
        env,
        "topic.html",
        site=site,
        root=root,
        title=feed_title(site, plan.topic),
        topic=plan.topic,
        description=feed_description(site, plan.topic),
        feeds=_feed_hrefs(site, plan, ""),  # beside the page
        all_feeds=_feed_hrefs(site, main, root),
        stories=_stories(plan.items, topics, root),
        total=plan.total,
        updated=newest_date(plan),
    )


def _render(env: Environment, template: str, **context: object) -> bytes:
    context["opml"] = f"{context['root']}{OPML_NAME}"
    return env.get_template(template).render(**context).encode("utf-8")


def _feed_hrefs(site: SiteConfig, plan: FeedPlan | FeedSummary, folder: str) -> FeedHrefs:
    return FeedHrefs(
        title=feed_title(site, plan.topic),
        rss=f"{folder}rss.xml",
        atom=f"{folder}atom.xml",
        json=f"{folder}{JSON_FEED_NAME}",
    )


def _topic_views(site: SiteConfig, topics: dict[str, FeedSummary], root: str) -> list[TopicView]:
    views = []
    for feed in topics.values():
        topic: Topic = feed.topic  # type: ignore[assignment]
        folder = f"{root}{feed.directory}/"
        hrefs = _feed_hrefs(site, feed, folder)
        views.append(TopicView(topic.name, topic.slug, feed.total, folder, hrefs, feed.shown))
    return sorted(views, key=lambda view: (view.name.casefold(), view.slug))


def _stories(
    records: Sequence[Record], topics: dict[str, FeedSummary], root: str
) -> list[StoryView]:
    return [_story(record, topics, root) for record in records]


def _story(record: Record, topics: dict[str, FeedSummary], root: str) -> StoryView:
    image = record.images[0] if record.images else None
    provider = record.provider.name if record.provider else record.guid.split("/")[2]
    story_topics = []
    for name in record.topics:
        feed = topics.get(topic_key(name))
        if feed is not None and feed.topic is not None:
            story_topics.append((feed.topic.name, f"{root}{feed.directory}/"))
    return StoryView(
        title=record.title,
        url=record.url,
        provider=provider,
        published=record.published,
        excerpt=record.excerpt_text,
        image=ImageView(image.url, image.width, image.height) if image else None,
        topics=tuple(story_topics),
        copies=tuple((copy_label(record, copy), copy.url) for copy in record.copies),
    )
