"""filters: keep/drop rules per source and per feed, min_quality/min_heat, path globs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import FilterConfig, load_config
from aggregator.errors import ConfigError
from aggregator.filters import compile_rules, first_match, path_allowed
from aggregator.pipeline import build

from .factories import fields, make_record, write_config, write_record


def rules(**config) -> tuple:
    return compile_rules(FilterConfig(**config), "sources[1]")


def test_words_match_whole_words_case_insensitively() -> None:
    drop = rules(drop=(("title", ("power apps",)),))
    assert first_match(drop, make_record(1, title="New in Power  Apps: forms"))
    assert first_match(drop, make_record(2, title="Why POWER APPS matters"))
    assert not first_match(drop, make_record(3, title="PowerApps and more"))
    assert not first_match(drop, make_record(4, title="Low power apparel"))


def test_regular_expressions_between_slashes() -> None:
    drop = rules(drop=(("link", (r"/\.pdf$/",)),))
    assert first_match(drop, make_record(1, webUrl="https://x.example/report.PDF"))
    assert not first_match(drop, make_record(2, webUrl="https://x.example/report"))


def test_every_field_can_be_matched() -> None:
    record = make_record(1, title="T", excerpt="Sponsored content", topics=["Ads"],
                         provider={"name": "PR Wire", "domain": "prwire.example"})  # fmt: skip
    patterns = [("excerpt", "sponsored"), ("provider", "pr wire"), ("provider", "prwire.example"),
                ("topic", "ads"), ("link", "outlet1")]  # fmt: skip
    for name, pattern in patterns:
        assert first_match(rules(drop=((name, (pattern,)),)), record), (name, pattern)


def test_keep_rules_let_only_matches_through_and_minimums_apply() -> None:
    keep = rules(keep=(("title", ("robot", "drone")),))
    assert not first_match(keep, make_record(1, title="A robot climbs stairs"))
    rule = first_match(keep, make_record(2, title="A quiet week"))
    assert rule is not None and "keep title 'robot'" in rule.description
    floor = rules(min_quality=40, min_heat=30)
    assert first_match(floor, make_record(3, quality=39, heat=90)).description.endswith(
        "min_quality 40"
    )
    assert first_match(floor, make_record(4, quality=90, heat=29)).description.endswith(
        "min_heat 30"
    )
    assert not first_match(floor, make_record(5, quality=40, heat=30))


def test_path_globs() -> None:
    assert not path_allowed("_learning/courses/a.md", (), ("_learning/**",))
    assert not path_allowed("_learning/a.md", (), ("_learning",))
    assert path_allowed("_news/a.md", (), ("_learning/**",))
    assert path_allowed("a.json", ("**/*.json",), ())
    assert path_allowed("deep/er/a.json", ("**/*.json",), ())
    assert not path_allowed("a.md", ("**/*.json",), ())


def write_site(tmp_path: Path, tables: str) -> Path:
    records = tmp_path / "records"
    write_record(records / "_news", "robot.md", fields(1, title="Robot learns to fold shirts",
                                                   topics=["Robots"], quality=80))  # fmt: skip
    write_record(records / "_news", "webinar.md", fields(2, title="Join our webinar on AI",
                                                     topics=["AI"], quality=90))  # fmt: skip
    write_record(records / "_news", "cold.md", fields(3, title="Quiet AI news", topics=["AI"],
                                                  heat=10))  # fmt: skip
    write_record(records / "_learning", "course.md", fields(4, title="Course: AI for everyone",
                                                        topics=["AI"]))  # fmt: skip
    return write_config(tmp_path, extra=tables)


def feed_titles(output: Path, folder: str = "") -> list[str]:
    feed = json.loads((output / folder / "feed.json").read_text("utf-8"))
    return [item["title"] for item in feed["items"]]


def test_source_filters_and_globs_are_counted_not_reported(tmp_path: Path, capsys) -> None:
    config_path = write_site(tmp_path, """
[[sources]]
path = "records"
exclude = ["_learning/**"]
min_heat = 20
drop.title = ["webinar"]
""")  # fmt: skip
    assert main(["build", "--config", str(config_path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "3 filtered" in out  # a file left out by its glob, two records by rules
    assert feed_titles(tmp_path / "out") == ["Robot learns to fold shirts"]


def test_feed_filters_apply_to_the_feeds_they_name(tmp_path: Path) -> None:
    config_path = write_site(tmp_path, """
[[sources]]
path = "records"

[[filters]]
topics = ["ai"]
drop.title = ["/webinar/"]

[[filters]]
all_topics = true
topics = []
min_quality = 60
""")  # fmt: skip
    config = load_config(config_path)
    report = build(config)
    assert report.rejected == 0 and report.filtered == 0  # feed filters drop no record
    output = tmp_path / "out"
    assert "Join our webinar on AI" not in feed_titles(output, "topics/ai")
    assert "Quiet AI news" in feed_titles(output, "topics/ai")
    assert feed_titles(output) == ["Join our webinar on AI", "Robot learns to fold shirts"]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('drop.title = ["/(unclosed/"]', "sources[1].drop.title"),
        ('drop.colour = ["red"]', "sources[1].drop.colour"),
        ("min_heat = 300", "sources[1].min_heat"),
        ('include = ["/abs/**"]', "sources[1].include"),
    ],
)
def test_bad_filter_settings_are_config_errors(tmp_path: Path, table: str, key: str) -> None:
    path = write_config(tmp_path, extra=f'[[sources]]\npath = "records"\n{table}\n')
    (tmp_path / "records").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert key in str(caught.value)


def test_remote_only_and_path_only_settings_are_checked(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, extra='[[sources]]\nurl = "https://feeds.example/x.json"\nexclude = ["a/**"]\n'
    )
    with pytest.raises(ConfigError, match="only for 'path' sources"):
        load_config(path)
