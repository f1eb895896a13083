"""validate: checking and normalising one mapping, and problems per document."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.errors import RecordError
from aggregator.model import Image, Provider, Related
from aggregator.validate import (
    Unpublished,
    load_record_file,
    record_from_mapping,
    records_from_text,
)

from .factories import DEFAULTS, fields, markdown, write_record


def reject(**overrides: object) -> RecordError:
    with pytest.raises(RecordError) as caught:
        record_from_mapping(fields(1, **overrides), DEFAULTS)
    return caught.value


def accept(**overrides: object):
    return record_from_mapping(fields(1, **overrides), DEFAULTS)


# --- required fields ---------------------------------------------------------------------


@pytest.mark.parametrize("title", [None, "", "   ", "\x00\x01"])
def test_missing_or_empty_title(title: object) -> None:
    error = reject(title=title) if title is not None else _without("title")
    assert error.field == "title"
    assert "missing" in error.reason


def _without(key: str) -> RecordError:
    data = fields(1)
    del data[key]
    with pytest.raises(RecordError) as caught:
        record_from_mapping(data, DEFAULTS)
    return caught.value


def test_missing_link() -> None:
    error = _without("webUrl")
    assert error.field == "webUrl"
    assert "missing" in error.reason


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/2026/11/story/", "relative"),
        ("www.example.org/story", "relative"),
        ("javascript:alert(1)", "javascript"),
        ("ftp://files.example.org/story", "ftp"),
        ("https://", "no host"),
        ("https://user:pw@example.org/x", "password"),
        ("https://example.org:99999/x", "port"),
        (42, "expected a URL string"),
    ],
)
def test_bad_links_are_rejected(url: object, words: str) -> None:
    error = reject(webUrl=url)
    assert error.field == "webUrl"
    assert words in error.reason


def test_original_url_is_used_when_web_url_is_missing() -> None:
    record = accept(webUrl=None, originalUrl="https://origin.example/a")
    assert record.url == "https://origin.example/a"


def test_original_url_is_used_when_web_url_is_unusable() -> None:
    record = accept(webUrl="javascript:void(0)", originalUrl="https://origin.example/b")
    assert record.url == "https://origin.example/b"


def test_both_links_bad_reports_web_url() -> None:
    error = reject(webUrl="/relative", originalUrl="mailto:x@example.org")
    assert error.field == "webUrl"


def test_missing_date() -> None:
    error = _without("publishedDateTime")
    assert (error.field, error.reason) == ("publishedDateTime", "missing")


@pytest.mark.parametrize("value", ["next Tuesday", "2026-13-01T00:00:00Z", "11/18/2026", True, [1]])
def test_bad_date(value: object) -> None:
    error = reject(publishedDateTime=value)
    assert error.field == "publishedDateTime"


def test_date_without_zone_is_utc() -> None:
    record = accept(publishedDateTime="2026-11-18T09:30:00")
    assert record.published == datetime(2026, 11, 18, 9, 30, tzinfo=UTC)
    assert record.published.utcoffset().total_seconds() == 0


def test_date_with_offset_is_converted_to_utc() -> None:
    record = accept(publishedDateTime="2026-11-18T09:30:00+02:00")
    assert record.published == datetime(2026, 11, 18, 7, 30, tzinfo=UTC)
    assert record.published.tzinfo is UTC


def test_date_only_is_midnight_utc() -> None:
    assert accept(publishedDateTime="2026-11-18").published == datetime(2026, 11, 18, tzinfo=UTC)


def test_unquoted_yaml_dates_are_accepted() -> None:
    text = markdown(fields(1)).replace(
        "publishedDateTime: '2026-11-02T08:00:00Z'", "publishedDateTime: 2026-11-02"
    )
    assert "publishedDateTime: 2026-11-02\n" in text
    [record] = records_from_text(text, "markdown", "x.md", DEFAULTS).records
    assert record.published == datetime(2026, 11, 2, tzinfo=UTC)
    stamp = text.replace("publishedDateTime: 2026-11-02", "publishedDateTime: 2026-11-02T10:00:00Z")
    [record] = records_from_text(stamp, "markdown", "x.md", DEFAULTS).records
    assert record.published == datetime(2026, 11, 2, 10, tzinfo=UTC)


def test_bad_update_time_falls_back_to_published() -> None:
    record = accept(updatedDateTime="whenever")
    assert record.updated == record.published
    record = accept(updatedDateTime="2026-11-30T00:00:00Z")
    assert record.updated == datetime(2026, 11, 30, tzinfo=UTC)


# --- quality and heat --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [(137, 100.0), (100, 100.0), (73.5, 73.5), (0, 0.0), (-5, 0.0), (-1, 50.0), ("80", 80.0)],
)
def test_heat_and_quality_are_clamped(given: object, expected: float) -> None:
    record = accept(heat=given, quality=given)
    assert record.heat == expected
    assert record.quality == expected


def test_missing_scores_take_the_configured_default() -> None:
    data = fields(1)
    del data["heat"], data["quality"]
    from aggregator.validate import RecordDefaults

    record = record_from_mapping(data, RecordDefaults(20.0, 70.0, DEFAULTS.tracking_params))
    assert (record.quality, record.heat) == (20.0, 70.0)


@pytest.mark.parametrize("value", ["hot", True, float("nan"), [3]])
def test_non_numeric_heat_is_rejected(value: object) -> None:
    assert reject(heat=value).field == "heat"


# --- published, topics, extras -----------------------------------------------------------


@pytest.mark.parametrize("value", [False, "false", "no"])
def test_unpublished_records_are_left_out(value: object) -> None:
    with pytest.raises(Unpublished):
        record_from_mapping(fields(1, published=value), DEFAULTS)


def test_unpublished_records_are_counted_not_rejected() -> None:
    text = markdown(fields(1, published=False))
    result = records_from_text(text, "markdown", "x.md", DEFAULTS)
    assert (result.records, result.problems, result.unpublished) == ((), (), 1)


def test_bad_published_flag_is_rejected() -> None:
    assert reject(published="maybe").field == "published"


def test_topics_are_trimmed_and_merged_case_insensitively() -> None:
    record = accept(topics=[" AI ", "ai", "AI", "Machine   Learning", None, "", "machine learning"])
    assert record.topics == ("AI", "Machine Learning")


def test_a_single_topic_string_is_a_list_of_one() -> None:
    assert accept(topics="Robotics").topics == ("Robotics",)
    assert accept(topics=None).topics == ()


def test_topics_must_be_a_list() -> None:
    assert reject(topics={"a": 1}).field == "topics"


def test_text_is_cleaned() -> None:
    record = accept(title="  Tom &amp; Jerry\x0b  &#8217;s  \n show ", excerpt="a\x00b")
    assert record.title == "Tom & Jerry ’s show"
    assert record.excerpt == "ab"


def test_provider_images_related_type_and_excerpt_are_kept() -> None:
    record = accept(
        provider={"name": "Example Times", "domain": "Times.Example"},
        images=[
            {"url": "relative.jpg"},
            {"url": "https://img.example/lead.jpg", "width": 1200, "height": 675},
            "https://img.example/second.png",
        ],
        related=[
            {
                "title": "Other take",
                "webUrl": "https://other.example/take",
                "provider": {"name": "Other"},
            },
            {"title": "Broken", "webUrl": "/nope"},
            {"webUrl": "https://untitled.example/x"},
        ],
        type="video",
        excerpt="Short summary.",
    )
    assert record.provider == Provider("Example Times", "times.example")
    assert record.images == (
        Image("https://img.example/lead.jpg", 1200, 675),
        Image("https://img.example/second.png"),
    )
    assert record.related == (
        Related("Other take", "https://other.example/take", "Other"),
        Related("https://untitled.example/x", "https://untitled.example/x"),
    )
    assert record.type == "video"
    assert record.excerpt == "Short summary."
    assert record.provider_key == "times.example"


def test_guid_is_the_canonical_link() -> None:
    record = accept(webUrl="HTTPS://WWW.Example.ORG/a/b/?utm_source=x&id=3#top")
    assert record.url == "https://www.example.org/a/b/?utm_source=x&id=3#top"
    assert record.guid == "https://www.example.org/a/b?id=3"


# --- one message per bad record; the rest of the document survives -----------------------


def test_problem_names_file_line_field_and_action(tmp_path: Path) -> None:
    path = write_record(tmp_path, "bad-date.md", fields(1, publishedDateTime="next Tuesday"))
    result = load_record_file(str(path), DEFAULTS)
    assert result.records == ()
    [problem] = result.problems
    line = path.read_text().splitlines().index("publishedDateTime: next Tuesday") + 1
    assert str(problem) == (
        f"{path}:{line}: error: publishedDateTime: 'next Tuesday' is not an ISO 8601 "
        "date-time; record skipped"
    )


def test_a_bad_record_in_a_list_costs_only_itself(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "batch.yaml"
    batch = [fields(1), fields(2, title=""), fields(3), fields(4, webUrl="javascript:x")]
    path.write_text(yaml.safe_dump(batch), encoding="utf-8")
    result = load_record_file(str(path), DEFAULTS)
    assert [r.title for r in result.records] == ["Story number 1", "Story number 3"]
    assert [(p.field, p.action) for p in result.problems] == [
        ("[1].title", "record skipped"),
        ("[3].webUrl", "record skipped"),
    ]
    assert all(p.origin == str(path) for p in result.problems)


def test_unparseable_file_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.md"
    path.write_text("---\ntitle: x\n  bad: [\n---\n", encoding="utf-8")
    [problem] = load_record_file(str(path), DEFAULTS).problems
    assert problem.origin == str(path)
    assert problem.line == 3
    assert problem.action == "file skipped"
    assert "invalid YAML" in problem.reason


def test_markdown_page_without_front_matter_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# About these records\n", encoding="utf-8")
    [problem] = load_record_file(str(path), DEFAULTS).problems
    assert problem.severity == "warning"
    assert problem.action == "file ignored"


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    [problem] = load_record_file(str(tmp_path / "gone.md"), DEFAULTS).problems
    assert problem.action == "file skipped"
    assert problem.severity == "error"
