"""model: records are immutable values, and the codec gives back the same record."""

from __future__ import annotations

import marshal
import pickle
from dataclasses import replace

import pytest

from aggregator.model import (
    Image,
    Provider,
    Related,
    field_values,
    record_from_values,
    record_values,
)

from .factories import make_record


def full_record():
    """A record with every part set, copies included (clustering adds those)."""
    record = make_record(
        1,
        images=[{"url": "https://img.example/lead.jpg", "width": 1200, "height": 675}],
        related=[{"title": "Other take", "webUrl": "https://other.example/take"}],
        updatedDateTime="2026-11-02T12:00:00+02:00",
    )
    return replace(record, copies=(Related("Copy", "https://copy.example/1", "Copy Desk"),))


def test_records_are_immutable() -> None:
    record = make_record()
    with pytest.raises(AttributeError):
        record.title = "changed"  # type: ignore[misc]


def test_record_values_are_plain_and_give_the_same_record() -> None:
    record = full_record()
    values = record_values(record)
    # marshal takes only plain values: what the parse cache and the snapshot store.
    again = record_from_values(marshal.loads(marshal.dumps(values)))
    assert again == record
    assert again.images == (Image("https://img.example/lead.jpg", 1200, 675),)
    assert again.copies == record.copies
    assert again.published.tzinfo is not None


def test_a_pickled_record_is_the_same_record() -> None:
    record = full_record()
    assert pickle.loads(pickle.dumps(record)) == record


def test_field_values_make_the_part_again() -> None:
    provider = Provider("Example News", "news.example.com")
    assert Provider(*field_values(provider)) == provider
    image = Image("https://img.example/x.png")
    assert field_values(image) == ("https://img.example/x.png", None, None)
