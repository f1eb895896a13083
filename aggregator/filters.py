"""Stage: keep or drop records by rules: per source (`[[sources]]` keep/drop/min_*) and
per feed (`[[filters]]`); and path globs for folder sources (include/exclude).

A pattern is words, matched whole and case-insensitively ("power apps" matches
"New in Power Apps:" but not "powerapps"), or `/a regular expression/`, searched
case-insensitively. A filtered record is not an error: builds count it, `explain`
names the rule.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aggregator.config import FeedFilterConfig, FilterConfig, SourceConfig
from aggregator.model import Record
from aggregator.patterns import compile_pattern
from aggregator.topics import topic_key


def _field_texts(record: Record, name: str) -> Iterable[str]:
    if name == "title":
        return (record.title,)
    if name == "excerpt":
        return (record.excerpt_text,)
    if name == "provider":
        if record.provider is None:
            return (record.guid.split("/")[2],)
        return (record.provider.name, record.provider.domain or "")
    if name == "topic":
        return record.topics
    return (record.url, record.guid)  # link: as given and canonical


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule, with the words `explain` and the summary show for it."""

    description: str  # e.g. 'drop title "webinar"', 'min_heat 40'
    test: Callable[[Record], bool]  # True when the rule filters the record out


def compile_rules(config: FilterConfig, where: str) -> tuple[Rule, ...]:
    """The rules of one filter table, in the order they are checked; `where` names the
    table ("sources[1]", "filters[2]")."""
    rules: list[Rule] = []
    if config.min_quality is not None:
        floor_q = config.min_quality
        rules.append(Rule(f"{where}: min_quality {floor_q:g}", lambda r: r.quality < floor_q))
    if config.min_heat is not None:
        floor_h = config.min_heat
        rules.append(Rule(f"{where}: min_heat {floor_h:g}", lambda r: r.heat < floor_h))
    for name, patterns in config.drop:
        for pattern in patterns:
            rules.append(Rule(f"{where}: drop {name} {pattern!r}", _matcher(name, pattern)))
    if config.keep:
        matchers = [_matcher(name, p) for name, patterns in config.keep for p in patterns]
        shown = ", ".join(f"{name} {p!r}" for name, patterns in config.keep for p in patterns)
        rules.append(
            Rule(
                f"{where}: keep {shown} (none matched)",
                lambda r: not any(match(r) for match in matchers),
            )
        )
    return tuple(rules)


def _matcher(name: str, pattern: str) -> Callable[[Record], bool]:
    search = compile_pattern(pattern).search
    return lambda record: any(search(text) for text in _field_texts(record, name))


def source_rules(sources: Sequence[SourceConfig]) -> list[tuple[Rule, ...]]:
    """Each `[[sources]]` table's rules, compiled, in order."""
    return [compile_rules(source.filters, f"sources[{index + 1}]")
            for index, source in enumerate(sources)]  # fmt: skip


def first_match(rules: tuple[Rule, ...], record: Record) -> Rule | None:
    """The first rule that filters `record` out, or None when it passes."""
    for rule in rules:
        if rule.test(record):
            return rule
    return None


@dataclass(frozen=True, slots=True)
class FeedRules:
    """The `[[filters]]` of a site, compiled, by the feeds they apply to."""

    everywhere: tuple[Rule, ...] = ()  # rules for every topic feed
    all_topics: tuple[Rule, ...] = ()  # rules for the all-topics feed
    by_topic: tuple[tuple[str, tuple[Rule, ...]], ...] = ()  # topic key or slug -> rules

    @classmethod
    def of(cls, filters: tuple[FeedFilterConfig, ...]) -> FeedRules:
        everywhere: list[Rule] = []
        all_topics: list[Rule] = []
        by_topic: dict[str, list[Rule]] = {}
        for index, table in enumerate(filters):
            rules = compile_rules(table.rules, f"filters[{index + 1}]")
            if table.all_topics:
                all_topics.extend(rules)
            if table.topics is None:
                everywhere.extend(rules)
            for name in table.topics or ():
                by_topic.setdefault(topic_key(name), []).extend(rules)
        return cls(tuple(everywhere), tuple(all_topics),
                   tuple((key, tuple(rules)) for key, rules in by_topic.items()))  # fmt: skip

    @property
    def indices(self) -> dict[int, int]:
        """id(rule) -> its number, for every rule once, in the order they are listed."""
        numbered: dict[int, int] = {}
        for rule in (*self.everywhere, *self.all_topics,
                     *(r for _, rules in self.by_topic for r in rules)):  # fmt: skip
            numbered.setdefault(id(rule), len(numbered))
        return numbered

    def failed_by(self, record: Record) -> tuple[int, ...]:
        """The numbers (`indices`) of the rules that leave `record` out."""
        if not (self.everywhere or self.all_topics or self.by_topic):
            return ()
        numbered = self.indices
        rules = {id(rule): rule for rule in (*self.everywhere, *self.all_topics,
                 *(r for _, rules in self.by_topic for r in rules))}  # fmt: skip
        return tuple(sorted(numbered[i] for i, rule in rules.items() if rule.test(record)))

    def indices_for(self, key: str | None, slug: str | None) -> frozenset[int]:
        """The numbers of the rules that apply to one feed (see `for_feed`)."""
        numbered = self.indices
        return frozenset(numbered[id(rule)] for rule in self.for_feed(key, slug))

    def for_feed(self, key: str | None, slug: str | None) -> tuple[Rule, ...]:
        """The rules of the all-topics feed (key None) or of one topic's feed."""
        if key is None:
            return self.all_topics
        named = dict(self.by_topic)
        return (*self.everywhere, *named.get(key, ()),
                *(named.get(slug, ()) if slug and slug != key else ()))  # fmt: skip


def path_allowed(relative: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Whether a file at `relative` (POSIX path inside its source folder) is read.

    Globs are shell patterns (fnmatch, case-sensitive) in which `*` also crosses folders:
    `_learning/**` (or `_learning`) is everything under `_learning`, `**/*.json` or
    `*.json` every JSON file.
    """
    if include and not any(_glob_match(relative, glob) for glob in include):
        return False
    return not any(_glob_match(relative, glob) for glob in exclude)


def _glob_match(relative: str, glob: str) -> bool:
    glob = glob.strip("/")
    patterns = [glob, glob + "/*"]  # a folder stands for everything under it
    if glob.startswith("**/"):
        patterns.append(glob[3:])  # also at the top of the source folder
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)
